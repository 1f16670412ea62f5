"""The CUDA-only paths of training and the model, checked against the CPU float32 computation they replace:
bfloat16 autocast, the SDPA padding mask under autocast, the fused AdamW step, TF32 kept off in the motif bank.

Skipped with a reason where no CUDA device is present (every CPU machine, CI); run on a lent GPU with
``python -m pytest -m gpu tests/test_gpu.py`` (benchmarks/README.md records the runs)."""
import copy
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from allelic.dnabert2 import DNABert2Config, DNABert2ForSequenceClassification  # noqa: E402
from allelic.train import TrainConfig, _autocast, _optimizer  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA device: bf16 autocast, fused AdamW and cuDNN paths run only there")]

CONFIG = dict(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=3)


def _model(seed=0):
    torch.manual_seed(seed)
    return DNABert2ForSequenceClassification(DNABert2Config(**CONFIG, num_labels=2)).eval()


def _batch(b=6, s=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 64, (b, s), generator=g)
    lengths = torch.linspace(s // 3, s, b).round().long()
    mask = (torch.arange(s)[None, :] < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, 3), mask


def test_bf16_autocast_matches_float32_on_cpu():
    """Logits under bf16 autocast on CUDA are the CPU float32 logits to bfloat16 precision (8-bit mantissa), and
    ``bf16="auto"`` turns autocast on for CUDA only."""
    model, (ids, mask) = _model(), _batch()
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        gpu = copy.deepcopy(model).cuda()
        with _autocast(torch.device("cuda"), "auto"):
            got = gpu(ids.cuda(), attention_mask=mask.cuda()).logits
    assert torch.is_autocast_enabled("cuda") is False  # restored after the block
    assert isinstance(_autocast(torch.device("cpu"), "auto"), type(_autocast(torch.device("cpu"), False)))
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.float().cpu().numpy(), ref.numpy(), atol=3e-2, rtol=3e-2)


def test_sdpa_padding_mask_under_autocast_keeps_real_tokens_independent_of_padding():
    """The additive padding bias must stay finite in bfloat16 (a -inf row gives NaN): the hidden states of real tokens
    do not change when padding is appended, on the SDPA path and the eager path alike."""
    model = _model().cuda()
    ids, _ = _batch(b=1, s=9)
    ids = ids.cuda()
    padded = torch.cat([ids, torch.full((1, 15), 3, device="cuda")], dim=1)
    pmask = torch.cat([torch.ones(1, 9, dtype=torch.long), torch.zeros(1, 15, dtype=torch.long)], dim=1).cuda()
    with torch.no_grad(), _autocast(torch.device("cuda"), True):
        short = model.bert(ids).last_hidden_state
        for eager in (False, True):
            long = model.bert(padded, attention_mask=pmask, output_attentions=eager).last_hidden_state
            assert torch.isfinite(long).all()
            torch.testing.assert_close(long[:, :9].float(), short.float(), atol=2e-2, rtol=2e-2)


def test_fused_adamw_step_equals_the_cpu_step():
    """On CUDA the optimizer is the fused AdamW; one step from the same gradients moves the weights as the CPU
    (for-each) AdamW does, to float32 rounding."""
    cfg = TrainConfig(learning_rate=1e-3, weight_decay=0.01, warmup_ratio=0.0)
    cpu_model, (ids, mask) = _model(), _batch()
    gpu_model = copy.deepcopy(cpu_model).cuda()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    opts = []
    for m, dev in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        m.train()
        opt, sched = _optimizer(m, cfg, total_steps=10)[:2]
        m(ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss.backward()
        opt.step()
        opts.append(opt)
    assert opts[1].param_groups[0]["fused"] is True and not opts[0].param_groups[0].get("fused")
    for (name, a), b in zip(cpu_model.named_parameters(), gpu_model.parameters()):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), atol=1e-5, rtol=1e-4, msg=name)


def test_motif_bank_scores_on_cuda_equal_the_lookup_tables():
    """:class:`allelic.pwm.PwmBank` on CUDA (TF32 off) gives the float64 lookup-table scores of
    :func:`allelic.pwm.scan` to float32 rounding: no hit count changes at a threshold from TF32 rounding."""
    from allelic.motifs import Motif, one_hot
    from allelic.pwm import PwmBank, scan

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, size=(4, 11)).astype(float) + 1
    motif = Motif("M1", "toy", counts)
    seqs = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(16)]
    bank = PwmBank([motif], device="cuda")
    x = torch.as_tensor(one_hot(seqs).transpose(0, 2, 1).copy(), device="cuda")
    got = bank.best_strand(x, 0)[:, 0].cpu().numpy()
    want = scan(seqs, motif).max(axis=2)
    np.testing.assert_allclose(got, want, atol=1e-4)
