"""A simulated personal epigenome with known ground truth — the book's embedded default data.

``simulate(preset_or_params)`` writes, deterministically from ``random_state``, real files that standard tools open:

==============================  ==========================================================================
file                            content
==============================  ==========================================================================
``genome.fa`` (+ ``.fai``)      reference genome of ``n_chromosomes`` chromosomes (``chr1``...)
``variants.vcf.gz`` (+ ``.tbi``)  phased genotypes of every donor (one sample column per donor): het SNVs,
                                some homozygous sites, a few indels and multi-allelic records
``bam/<sample>.bam`` (+ ``.bai``) sorted single-end reads of one donor x tissue x assay, in reference
                                coordinates, each read carrying its haplotype's alleles
``peaks/<sample>.bed``          regions the assay measured in that tissue (active elements)
``samples.tsv``                 sample, donor, tissue, assay, bam, peaks, rho, depth_scale
``elements.tsv``                regulatory elements: id, type (ctcf, promoter, enhancer), chrom, start, end
``motif_instances.tsv``         planted motifs: element, JASPAR id, name, chrom, start, end, strand
``truth.tsv.gz``                one row per het SNV x sample measured: the true allelic ratios, AS or not,
                                whether the SNV disrupts a planted motif, the motif score change, the BAD
``cnv.tsv``                     copy-number segments of the aneuploid donors (``cnv_donors``): BAD and the
                                amplified haplotype; ``bad_maps/<donor>.bed`` the same as BAD maps
``manifest.json``               parameters, their hash and the file list (the cache key)
==============================  ==========================================================================

The ground-truth model (documented in the book's chapter 01):

* Elements carry motifs sampled from real JASPAR matrices (CTCF sites: MA0139.1; promoters: NRF1, SP1, YY1, TBP;
  enhancers: AP-1, CEBPB, HNF4A, FOXA2). Some het SNVs fall inside planted motifs.
* For donor *d*, element *e*: ``delta = sum over its motifs of (PWM score on haplotype 1 - on haplotype 2)`` (bits).
  In tissue *t*, assay *a*: ``logit(r1) = effect_per_bit * gate[e, t] * assay_effect[a] * delta`` (0 when
  ``|delta| < min_delta``), clipped to +-4; ``r1`` is the fraction of the element's signal from haplotype 1.
  ``gate[e, t]`` is 0 (no allelic effect in that tissue) with probability ``p_gate_off``, else U(0.5, 1): the
  tissue-specific differential effects. Every het SNV inside the assay's region of the element inherits ``r1``
  (histone marks and RNA spread the haplotype's activity along the region), so ``is_as`` is ``r1 != 0.5`` and
  ``causal`` marks the SNVs inside a motif.
* Copy number (``cnv_donors`` only): in a segment where haplotype 1 has ``b`` times the copies of haplotype 2, its
  share of the reads is ``b r1 / (b r1 + 1 - r1)`` (and symmetrically); ``is_as`` still means ``r1 != 0.5``, an
  allelic effect beyond what the dosage explains, while ``true_ref_ratio`` and ``expected_ref_ratio`` include the
  dosage.
* Observed reads: ``n ~ NegBin(depth * level[e, t] * depth_scale)``, reference reads ~ BetaBinom(n, q, rho_sample)
  with ``q = r_ref (1 + ref_bias) / (r_ref (1 + ref_bias) + 1 - r_ref)`` (reference mapping bias). Extra
  low-MAPQ reads carry the reference allele, duplicates are flagged, bases carry sequencing errors and qualities.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .motifs import Motif, load_jaspar, reverse_complement
from .progress import bar
from .pwm import scan

ASSAYS = ("CTCF", "POL2", "H3K4me3", "H3K27ac", "RNA")
ELEMENT_MOTIFS = {
    "ctcf": ("MA0139.1",),
    "promoter": ("MA0506.3", "MA0079.5", "MA0095.4", "MA0108.3"),
    "enhancer": ("MA0099.4", "MA0466.4", "MA0114.5", "MA0047.4"),
}
#: assay -> {element type: (relative depth, half-width of the measured region or "gene" for a gene body)}
ASSAY_REGIONS = {
    "CTCF": {"ctcf": (1.0, 100)},
    "POL2": {"promoter": (1.0, 150), "enhancer": (0.4, 150)},
    "H3K4me3": {"promoter": (1.0, 500)},
    "H3K27ac": {"promoter": (0.8, 400), "enhancer": (1.0, 400)},
    "RNA": {"promoter": (1.0, "gene")},
}
#: how strongly each assay reflects the element's allelic effect
ASSAY_EFFECT = {"CTCF": 1.0, "POL2": 1.0, "H3K4me3": 0.6, "H3K27ac": 0.8, "RNA": 1.0}
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_GENE = (100, 1600)  # gene body of a promoter: from its end + 100 to + 1600
#: smallest element slot (bp): an element starts 200-600 bp into its slot, its gene body ends at most 2500 bp into it
_MIN_SLOT = 2500


@dataclass(frozen=True)
class SimParams:
    """Parameters of the simulated personal epigenome (see the module docstring for the model)."""

    n_chromosomes: int = 2
    chrom_length: int = 300_000
    slot: int = 3000  # bp per element: one element per slot (>= 2500, so gene bodies stay clear of the next element)
    donors: tuple = ("D1", "D2")
    tissues: tuple = ("liver", "lung", "heart")
    assays: tuple = ASSAYS
    gc: float = 0.42
    element_types: dict = field(default_factory=lambda: {"ctcf": 0.4, "promoter": 0.3, "enhancer": 0.3})
    p_active: dict = field(default_factory=lambda: {"ctcf": 0.9, "promoter": 0.8, "enhancer": 0.5})
    p_motif_snv: float = 0.2
    snv_rate: float = 2e-3
    p_het: float = 0.5
    p_het_motif: float = 0.5
    p_hom_alt: float = 0.1
    frac_indel: float = 0.01
    frac_multiallelic: float = 0.005
    effect_per_bit: float = 0.5
    min_delta: float = 2.0
    p_gate_off: float = 0.3
    depth: float = 40.0
    depth_dispersion: float = 5.0
    rho: float = 0.03
    ref_bias: float = 0.08
    read_length: int = 50
    error_rate: float = 0.003
    low_qual_rate: float = 0.02
    low_mapq_rate: float = 0.03
    dup_rate: float = 0.05
    #: aneuploid "cell line" donors: each chromosome is cut into ``cnv_segments`` segments at uniform breakpoints; a
    #: segment stays diploid with probability ``p_cnv_diploid``, else one haplotype (at random) carries ``b`` times
    #: the copies of the other, ``b`` drawn from ``cnv_bads`` (the background allelic dosage, BAD)
    cnv_donors: tuple = ()
    cnv_bads: tuple = (4 / 3, 3 / 2, 2.0, 3.0)
    cnv_segments: int = 4
    p_cnv_diploid: float = 0.25
    random_state: int = 0

    def sample_names(self) -> list[str]:
        """The samples a simulation of these parameters holds (``<donor>_<tissue>_<assay>``, in ``samples.tsv``'s
        order), without simulating."""
        return [f"{d}_{t}_{a}" for d in self.donors for t in self.tissues for a in self.assays]

    def key(self) -> str:
        d = dataclasses.asdict(self)
        if not self.cnv_donors:                   # a diploid data set's key does not depend on the copy-number settings
            d = {k: v for k, v in d.items() if not k.startswith(("cnv_", "p_cnv"))}
        blob = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha256(f"{_FORMAT_VERSION}:{blob}".encode()).hexdigest()[:12]


_FORMAT_VERSION = 2  # 2: truth.tsv.gz has the BAD of each site; cnv.tsv and bad_maps/ written
#: element mix of the default and full presets: CTCF regions (+-100 bp) hold few SNVs, so CTCF sites are the majority,
#: which gives every assay about as many SNV x assay examples (chapter 03) as CTCF has
_DENSE_ELEMENTS = {"ctcf": 0.62, "promoter": 0.155, "enhancer": 0.225}
PRESETS = {
    "smoke": SimParams(),
    # 12 chromosomes (6 chromosome folds of 2 test chromosomes): chapter 03 gets >= 7,000 SNV x assay examples per
    # assay and >= 5,000 training windows per assay in every fold (measured: 5,300)
    "default": SimParams(n_chromosomes=12, chrom_length=4_250_000, slot=2500, donors=("D1", "D2", "D3", "D4"),
                         tissues=("adrenal_gland", "liver", "lung", "stomach", "thyroid"),
                         element_types=dict(_DENSE_ELEMENTS), read_length=76),
    "full": SimParams(n_chromosomes=16, chrom_length=5_000_000, slot=2500, donors=("D1", "D2", "D3", "D4"),
                      tissues=("adrenal_gland", "heart", "liver", "lung", "spleen", "stomach", "thyroid", "transverse_colon"),
                      element_types=dict(_DENSE_ELEMENTS), read_length=76),
}


def get_params(preset_or_params="smoke", **overrides) -> SimParams:
    """A :class:`SimParams` from a preset name (``smoke``, ``default``, ``full``), a dict or a SimParams, with overrides."""
    if isinstance(preset_or_params, SimParams):
        p = preset_or_params
    elif isinstance(preset_or_params, dict):
        p, overrides = SimParams(), {**preset_or_params, **overrides}
    elif preset_or_params in PRESETS:
        p = PRESETS[preset_or_params]
    else:
        raise ValueError(f"unknown simulation preset {preset_or_params!r}; expected one of {', '.join(PRESETS)} or a dict of SimParams fields")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SimParams)}
    if unknown:
        raise ValueError(f"unknown simulation parameter(s) {', '.join(sorted(unknown))}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    p = dataclasses.replace(p, **overrides)
    if not isinstance(p.slot, (int, np.integer)) or p.slot < _MIN_SLOT:
        raise ValueError(f"slot must be an integer >= {_MIN_SLOT} bp (an element and its gene body fill that), got {p.slot!r}")
    return p


@dataclass
class Simulation:
    """A simulated data set on disk; the tables load lazily."""

    root: Path
    params: SimParams

    @property
    def fasta(self) -> Path:
        return self.root / "genome.fa"

    @property
    def vcf(self) -> Path:
        return self.root / "variants.vcf.gz"

    def samples(self) -> pd.DataFrame:
        s = pd.read_csv(self.root / "samples.tsv", sep="\t")
        for col in ("bam", "peaks"):
            s[col] = [str(self.root / p) for p in s[col]]
        return s

    def truth(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "truth.tsv.gz", sep="\t")

    def elements(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "elements.tsv", sep="\t")

    def motif_instances(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "motif_instances.tsv", sep="\t")

    def bams(self) -> dict:
        """``{sample: bam path}``."""
        s = self.samples()
        return dict(zip(s["sample"], s["bam"]))


def simulate(preset_or_params="smoke", out_dir=None, *, force: bool = False, progress=None, **overrides) -> Simulation:
    """Write (or reuse) a simulated data set; returns a :class:`Simulation`.

    ``out_dir`` defaults to ``<data_dir>/<preset>-<parameter hash>`` (see :func:`allelic.config.data_dir`). An existing
    folder whose ``manifest.json`` holds the same parameter hash is reused unless ``force``; one with another hash is
    rewritten; a non-empty folder that is not a simulated data set raises FileExistsError (nothing is deleted)."""
    params = get_params(preset_or_params, **overrides)
    name = preset_or_params if isinstance(preset_or_params, str) else "custom"
    out = Path(out_dir) if out_dir else config.data_dir() / f"{name}-{params.key()}"
    manifest = out / "manifest.json"
    if not force and manifest.is_file() and json.loads(manifest.read_text()).get("key") == params.key():
        return Simulation(out, params)
    if out.exists():
        if not manifest.is_file() and (out.is_file() or any(out.iterdir())):
            raise FileExistsError(f"{out}: exists and is not a simulated data set (no manifest.json); "
                                  f"choose a new or empty folder")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _Simulator(params, tmp, progress).run()
    tmp.rename(out)
    return Simulation(out, params)


class _Simulator:
    def __init__(self, p: SimParams, out: Path, progress):
        self.p, self.out, self.rng = p, out, np.random.default_rng(p.random_state)
        self.progress = progress
        self.chroms = [f"chr{i + 1}" for i in range(p.n_chromosomes)]
        self._region_cache = {}

    # -- genome ------------------------------------------------------------------------------------------
    def genome(self):
        p, rng = self.p, self.rng
        probs = [(1 - p.gc) / 2, p.gc / 2, p.gc / 2, (1 - p.gc) / 2]
        self.seq = {c: BASES[rng.choice(4, size=p.chrom_length, p=probs)] for c in self.chroms}

    def elements(self):
        p, rng = self.p, self.rng
        types = list(p.element_types)
        probs = np.array([p.element_types[t] for t in types], float)
        motifs = {m.matrix_id: m for m in load_jaspar(sorted({i for ids in ELEMENT_MOTIFS.values() for i in ids}))}
        els, inst = [], []
        for c in self.chroms:
            n_slots = p.chrom_length // p.slot - 1
            for s in range(n_slots):
                etype = types[rng.choice(len(types), p=probs / probs.sum())]
                start = (s + 1) * p.slot + int(rng.integers(200, 600))
                end = start + 300
                eid = f"E{len(els) + 1:05d}"
                els.append((eid, etype, c, start, end))
                ids = ELEMENT_MOTIFS[etype]
                chosen = ids if len(ids) == 1 else tuple(rng.choice(ids, size=2, replace=False))
                # non-overlapping motif slots inside the element core
                offsets = [150] if len(chosen) == 1 else [40, 170]
                for mid, off in zip(chosen, offsets):
                    m = motifs[mid]
                    site = m.sample(1, random_state=rng)[0]
                    strand = "+" if rng.random() < 0.5 else "-"
                    if strand == "-":
                        site = reverse_complement(site)
                    mstart = start + off - m.width // 2
                    self.seq[c][mstart:mstart + m.width] = np.frombuffer(site.encode(), np.uint8)
                    inst.append((eid, mid, m.name, c, mstart, mstart + m.width, strand))
        self.els = pd.DataFrame(els, columns=["element_id", "type", "chrom", "start", "end"])
        self.inst = pd.DataFrame(inst, columns=["element_id", "motif_id", "motif", "chrom", "start", "end", "strand"])
        self.motifs = motifs

    # -- variants ----------------------------------------------------------------------------------------
    def variants(self):
        p, rng = self.p, self.rng
        rows = []
        taken = {c: set() for c in self.chroms}
        for r in self.inst.itertuples():  # SNVs inside planted motifs
            if rng.random() < p.p_motif_snv:
                pos = int(rng.integers(r.start, r.end))
                taken[r.chrom].add(pos)
                rows.append((r.chrom, pos, "snv_motif"))
        for c in self.chroms:
            n = rng.poisson(p.snv_rate * p.chrom_length)
            for pos in rng.choice(np.arange(100, p.chrom_length - 100), size=n, replace=False):
                if int(pos) not in taken[c]:
                    taken[c].add(int(pos))
                    rows.append((c, int(pos), "snv"))
        v = pd.DataFrame(rows, columns=["chrom", "pos0", "kind"])
        v["chrom_idx"] = v["chrom"].map({c: i for i, c in enumerate(self.chroms)})
        v = v.sort_values(["chrom_idx", "pos0"], kind="stable").reset_index(drop=True)
        u = rng.random(len(v))
        bg = (v["kind"] == "snv").to_numpy()
        v.loc[bg & (u < p.frac_indel), "kind"] = "indel"
        v.loc[bg & (u >= p.frac_indel) & (u < p.frac_indel + p.frac_multiallelic), "kind"] = "multiallelic"
        ref = np.array([self.seq[c][pos] for c, pos in zip(v["chrom"], v["pos0"])], np.uint8)
        shift = rng.integers(1, 4, size=len(v))
        code = np.searchsorted(BASES, ref)
        alt = BASES[(code + shift) % 4]
        alt2 = BASES[(code + shift % 3 + 1) % 4]
        v["ref"] = ref.view("S1").astype(str)
        v["alt"] = alt.view("S1").astype(str)
        ins = v["kind"] == "indel"
        v.loc[ins, "alt"] = v.loc[ins, "ref"] + "T"
        mult = v["kind"] == "multiallelic"
        v.loc[mult, "alt"] = v.loc[mult, "alt"] + "," + pd.Series(alt2.view("S1").astype(str), index=v.index)[mult]
        # genotypes: (n_sites, n_donors, 2) alleles 0/1 (2 = second alt of multi-allelic sites)
        nd = len(p.donors)
        gt = np.zeros((len(v), nd, 2), np.int8)
        p_het = np.where(v["kind"] == "snv_motif", p.p_het_motif, p.p_het)[:, None]
        draw = rng.random((len(v), nd))
        het = draw < p_het
        homalt = (draw >= p_het) & (draw < p_het + p.p_hom_alt)
        first = rng.random((len(v), nd)) < 0.5
        gt[..., 0] = np.where(het, first, homalt)
        gt[..., 1] = np.where(het, ~first, homalt)
        gt[mult.to_numpy()] *= 1 + (rng.random((int(mult.sum()), nd, 1)) < 0.5).astype(np.int8)  # 0|2 or 1|1 ...
        self.v, self.gt = v, gt

    def haplotypes(self):
        """Per donor, per chromosome, two haplotype sequences with the SNV alleles applied."""
        snv = (self.v["kind"].isin(["snv", "snv_motif"])).to_numpy()
        alt = np.frombuffer("".join(self.v["alt"].str[0]).encode(), np.uint8)
        self.hap = {}
        for d, donor in enumerate(self.p.donors):
            self.hap[donor] = {}
            for c in self.chroms:
                on = snv & (self.v["chrom"] == c).to_numpy()
                pos = self.v["pos0"].to_numpy()[on]
                haps = []
                for h in range(2):
                    s = self.seq[c].copy()
                    carry = self.gt[on, d, h] == 1
                    s[pos[carry]] = alt[on][carry]
                    haps.append(s)
                self.hap[donor][c] = haps

    def motif_effects(self):
        """Per donor and element, the haplotype motif-score difference (bits) and per-SNV causal scores."""
        lo = {mid: m.log_odds() for mid, m in self.motifs.items()}
        delta = np.zeros((len(self.p.donors), len(self.els)))
        eidx = {e: i for i, e in enumerate(self.els["element_id"])}
        for r in self.inst.itertuples():
            pwm = lo[r.motif_id]
            for d, donor in enumerate(self.p.donors):
                s = [_site_score(self.hap[donor][r.chrom][h][r.start:r.end], pwm, r.strand) for h in range(2)]
                delta[d, eidx[r.element_id]] += s[0] - s[1]
        self.delta = delta
        # reference / alternative score of each SNV inside a motif (causal SNVs)
        rec = []
        snv = self.v[self.v["kind"].isin(["snv", "snv_motif"]).to_numpy()]
        on = {c: snv[(snv["chrom"] == c).to_numpy()] for c in self.chroms}  # sorted by position within a chromosome
        on = {c: (t["pos0"].to_numpy(), t["alt"].tolist()) for c, t in on.items()}
        for r in self.inst.itertuples():
            pos_c, alt_c = on[r.chrom]
            i0, i1 = np.searchsorted(pos_c, [r.start, r.end])
            for pos0, alt in zip(pos_c[i0:i1].tolist(), alt_c[i0:i1]):
                ref_site = self.seq[r.chrom][r.start:r.end].copy()
                alt_site = ref_site.copy()
                alt_site[pos0 - r.start] = ord(alt[0])
                rec.append((r.chrom, pos0, r.element_id, r.motif,
                            _site_score(ref_site, lo[r.motif_id], r.strand), _site_score(alt_site, lo[r.motif_id], r.strand)))
        self.causal = pd.DataFrame(rec, columns=["chrom", "pos0", "element_id", "motif", "ref_score", "alt_score"])

    def copy_number(self):
        """Copy-number segments of the ``cnv_donors`` (their own random stream, so the diploid draws are unchanged):
        ``self.cnv[donor][chrom] = (segment starts, BADs, amplified haplotype)``; ``cnv.tsv`` and one BAD map per
        donor (``bad_maps/<donor>.bed``, the format :func:`allelic.dosage.read_bad_map` reads) record them."""
        p = self.p
        unknown = sorted(set(p.cnv_donors) - set(p.donors))
        if unknown:
            raise ValueError(f"cnv_donors {unknown} are not among the donors {list(p.donors)}")
        rng = np.random.default_rng([p.random_state, 1])
        self.cnv, rows = {}, []
        for donor in p.cnv_donors:
            self.cnv[donor] = {}
            for c in self.chroms:
                cuts = np.sort(rng.choice(np.arange(1, p.chrom_length), size=p.cnv_segments - 1, replace=False))
                starts = np.r_[0, cuts]
                ends = np.r_[cuts, p.chrom_length]
                diploid = rng.random(p.cnv_segments) < p.p_cnv_diploid
                bads = np.where(diploid, 1.0, rng.choice(np.asarray(p.cnv_bads, float), size=p.cnv_segments))
                amp = rng.integers(0, 2, size=p.cnv_segments)
                self.cnv[donor][c] = (starts, bads, amp)
                rows += [(donor, c, int(a), int(b), float(bd), int(h) + 1) for a, b, bd, h in zip(starts, ends, bads, amp)]
        cnv = pd.DataFrame(rows, columns=["donor", "chrom", "start", "end", "bad", "amplified_haplotype"])
        cnv.round({"bad": 6}).to_csv(self.out / "cnv.tsv", sep="\t", index=False)
        if len(cnv):
            (self.out / "bad_maps").mkdir()
            for donor, t in cnv.groupby("donor"):
                t[["chrom", "start", "end", "bad"]].round({"bad": 6}).to_csv(
                    self.out / "bad_maps" / f"{donor}.bed", sep="\t", index=False, header=["#chrom", "start", "end", "BAD"])

    def _dosage(self, donor: str, chrom: str, pos0: int) -> tuple[float, int]:
        """(BAD, amplified haplotype) of a site of ``donor``; (1, 0) in a diploid donor."""
        seg = self.cnv.get(donor)
        if seg is None:
            return 1.0, 0
        starts, bads, amp = seg[chrom]
        i = int(np.searchsorted(starts, pos0, side="right")) - 1
        return float(bads[i]), int(amp[i])

    def tissues(self):
        p, rng = self.p, self.rng
        ne, nt = len(self.els), len(p.tissues)
        pa = self.els["type"].map(p.p_active).to_numpy()[:, None]
        self.active = rng.random((ne, nt)) < pa
        self.level = rng.lognormal(0.0, 0.4, size=(ne, nt))
        self.gate = np.where(rng.random((ne, nt)) < p.p_gate_off, 0.0, rng.uniform(0.5, 1.0, size=(ne, nt)))

    # -- reads -------------------------------------------------------------------------------------------
    def _regions(self, assay):
        """(element index, chrom, start, end, relative depth) of the regions an assay measures."""
        if assay in self._region_cache:
            return self._region_cache[assay]
        out = []
        for i, e in enumerate(self.els.itertuples()):
            spec = ASSAY_REGIONS[assay].get(e.type)
            if spec is None:
                continue
            rel, half = spec
            if half == "gene":
                s, t = e.end + _GENE[0], e.end + _GENE[1]
            else:
                mid = (e.start + e.end) // 2
                s, t = mid - half, mid + half
            out.append((i, e.chrom, max(0, s), min(self.p.chrom_length, t), rel))
        self._region_cache[assay] = out
        return out

    def reads_and_truth(self):
        p, rng = self.p, self.rng
        (self.out / "bam").mkdir()
        (self.out / "peaks").mkdir()
        snv_mask = self.v["kind"].isin(["snv", "snv_motif"]).to_numpy()
        vs = self.v[snv_mask]
        gt = self.gt[snv_mask]
        by_chrom = {c: (vs["pos0"].to_numpy()[(vs["chrom"] == c).to_numpy()], np.flatnonzero((vs["chrom"] == c).to_numpy()))
                    for c in self.chroms}
        v_pos0, v_ref, v_alt = vs["pos0"].to_numpy(), vs["ref"].tolist(), vs["alt"].tolist()
        causal = {(c, pos0): (m, rs, as_) for c, pos0, m, rs, as_ in zip(
            self.causal["chrom"], self.causal["pos0"], self.causal["motif"], self.causal["ref_score"], self.causal["alt_score"])}
        if len(causal) != len(self.causal):
            raise AssertionError("an SNV lies in two planted motifs")
        el_id, el_type = self.els["element_id"].tolist(), self.els["type"].tolist()
        samples, truth = [], []
        combos = [(d, t, a) for d in range(len(p.donors)) for t in range(len(p.tissues)) for a in p.assays]
        for d, t, assay in bar(combos, desc="simulating samples", progress=self.progress):
            donor, tissue = p.donors[d], p.tissues[t]
            sample = f"{donor}_{tissue}_{assay}"
            rho = float(rng.uniform(0.5, 1.5) * p.rho)
            scale = float(rng.uniform(0.7, 1.3))
            reads, peaks = [], []
            for ei, c, s, e, rel in self._regions(assay):
                if not self.active[ei, t]:
                    continue
                peaks.append((c, s, e, el_id[ei], self.level[ei, t]))
                pos_c, idx_c = by_chrom[c]
                lo_, hi_ = np.searchsorted(pos_c, [s, e])
                sel = idx_c[lo_:hi_]
                sel = sel[gt[sel, d, 0] != gt[sel, d, 1]]  # heterozygous in this donor
                if len(sel) == 0:
                    continue
                dl = self.delta[d, ei]
                eff = 0.0 if abs(dl) < p.min_delta else p.effect_per_bit * self.gate[ei, t] * ASSAY_EFFECT[assay] * dl
                r1 = float(1 / (1 + np.exp(-np.clip(eff, -4, 4))))
                mean = p.depth * self.level[ei, t] * scale * rel
                for k in sel:
                    pos0, ref, alt = v_pos0[k], v_ref[k], v_alt[k]
                    hap_ref = 0 if gt[k, d, 0] == 0 else 1  # haplotype carrying the reference allele
                    bad, amp = self._dosage(donor, c, pos0)
                    c1 = bad if amp == 0 else 1.0          # copies of haplotype 1 relative to haplotype 2
                    c2 = 1.0 if amp == 0 else bad
                    r1_reads = c1 * r1 / (c1 * r1 + c2 * (1 - r1))  # haplotype 1's share of the reads
                    r_ref = r1_reads if hap_ref == 0 else 1 - r1_reads
                    q = r_ref * (1 + p.ref_bias) / (r_ref * (1 + p.ref_bias) + 1 - r_ref)
                    n = int(rng.negative_binomial(p.depth_dispersion, p.depth_dispersion / (p.depth_dispersion + mean)))
                    k_ref = int(_betabinom_draw(rng, n, q, rho))
                    n_low = int(rng.binomial(n, p.low_mapq_rate))
                    reads.append((c, pos0, hap_ref, k_ref, n - k_ref, n_low))
                    cz = causal.get((c, pos0))
                    truth.append((c, pos0 + 1, ref, alt, donor, tissue, assay, sample, el_id[ei], el_type[ei],
                                  ref if gt[k, d, 0] == 0 else alt, ref if gt[k, d, 1] == 0 else alt,
                                  r1, r_ref, q, mean, abs(r1 - 0.5) > 1e-12, cz is not None,
                                  None if cz is None else cz[0], np.nan if cz is None else cz[1],
                                  np.nan if cz is None else cz[2], dl, self.gate[ei, t], bad))
            bam = self.out / "bam" / f"{sample}.bam"
            self._write_bam(bam, sample, donor, reads)
            bed = self.out / "peaks" / f"{sample}.bed"
            pk = pd.DataFrame(peaks, columns=["chrom", "start", "end", "name", "score"]).sort_values(["chrom", "start"])
            pk.round({"score": 3}).to_csv(bed, sep="\t", header=False, index=False)
            samples.append((sample, donor, tissue, assay, f"bam/{sample}.bam", f"peaks/{sample}.bed", round(rho, 5), round(scale, 4)))
        pd.DataFrame(samples, columns=["sample", "donor", "tissue", "assay", "bam", "peaks", "rho", "depth_scale"]).to_csv(
            self.out / "samples.tsv", sep="\t", index=False)
        cols = ["chrom", "pos", "ref", "alt", "donor", "tissue", "assay", "sample", "element_id", "element_type",
                "hap1_allele", "hap2_allele", "true_hap1_ratio", "true_ref_ratio", "expected_ref_ratio", "expected_depth",
                "is_as", "causal", "motif", "motif_ref_score", "motif_alt_score", "element_delta", "tissue_gate", "bad"]
        tr = pd.DataFrame(truth, columns=cols)
        with open(self.out / "truth.tsv.gz", "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(tr.round(6).to_csv(sep="\t", index=False).encode())  # mtime=0: identical bytes for identical parameters

    def _write_bam(self, path: Path, sample: str, donor: str, sites):
        import pysam

        p, rng, L = self.p, self.rng, self.p.read_length
        chrom_of, start, hap, mapq = [], [], [], []
        for c, pos0, hap_ref, k_ref, k_alt, n_low in sites:
            n = k_ref + k_alt + n_low
            if n == 0:
                continue
            st = np.clip(pos0 - rng.integers(0, L, size=n), 0, p.chrom_length - L)
            h = np.concatenate([np.full(k_ref, hap_ref), np.full(k_alt, 1 - hap_ref), np.full(n_low, hap_ref)])
            mq = np.concatenate([rng.integers(30, 61, size=k_ref + k_alt), rng.integers(0, 6, size=n_low)])
            chrom_of.append(np.full(n, self.chroms.index(c)))
            start.append(st)
            hap.append(h)
            mapq.append(mq)
        header = "@HD\tVN:1.6\tSO:coordinate\n" + "".join(f"@SQ\tSN:{c}\tLN:{p.chrom_length}\n" for c in self.chroms)
        header += f"@RG\tID:{sample}\tSM:{donor}\tLB:{sample}\tPL:ILLUMINA\n"
        lines = []
        if start:
            ci, st, h, mq = (np.concatenate(x) for x in (chrom_of, start, hap, mapq))
            dup = rng.random(len(st)) < p.dup_rate
            ci, st, h, mq = (np.r_[x, x[dup]] for x in (ci, st, h, mq))
            fl = np.where(rng.random(len(st)) < 0.5, 16, 0)
            fl[len(fl) - int(dup.sum()):] |= 1024
            order = np.lexsort((st, ci))
            ci, st, h, mq, fl = ci[order], st[order], h[order], mq[order], fl[order]
            seqs = np.empty((len(st), L), np.uint8)
            quals = np.full((len(st), L), 37, np.uint8)
            offs = np.arange(L)
            for i, c in enumerate(self.chroms):
                m = ci == i
                if not m.any():
                    continue
                idx = st[m, None] + offs
                h0, h1 = self.hap[donor][c]
                seqs[m] = np.where(h[m, None] == 0, h0[idx], h1[idx])
            err = rng.random(seqs.shape) < p.error_rate
            code = np.searchsorted(BASES, seqs[err])
            seqs[err] = BASES[(code + rng.integers(1, 4, size=code.size)) % 4]
            quals[err] = rng.choice(np.array([8, 25], np.uint8), size=int(err.sum()))
            quals[rng.random(seqs.shape) < p.low_qual_rate] = 8
            seq_s = seqs.view(f"S{L}").ravel().astype(str)
            qual_s = (quals + 33).view(f"S{L}").ravel().astype(str)
            cigar = f"{L}M"
            lines = [f"{sample}:{j}\t{f}\t{self.chroms[c]}\t{s + 1}\t{q}\t{cigar}\t*\t0\t0\t{sq}\t{ql}\tRG:Z:{sample}\n"
                     for j, (f, c, s, q, sq, ql) in enumerate(zip(fl.tolist(), ci.tolist(), st.tolist(), mq.tolist(), seq_s, qual_s))]
        sam = path.with_suffix(".sam")
        sam.write_text(header + "".join(lines))
        pysam.view("-b", "--no-PG", "-o", str(path), str(sam), catch_stdout=False)
        sam.unlink()
        pysam.index(str(path))

    # -- files -------------------------------------------------------------------------------------------
    def write_reference(self):
        import pysam

        fa = self.out / "genome.fa"
        with open(fa, "w") as fh:
            for c in self.chroms:
                s = self.seq[c].tobytes().decode()
                fh.write(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n")
        pysam.faidx(str(fa))

    def write_vcf(self):
        import pysam

        p = self.p
        head = ["##fileformat=VCFv4.2", "##source=allelic.simulate", "##reference=genome.fa"]
        head += [f"##contig=<ID={c},length={p.chrom_length}>" for c in self.chroms]
        head += ['##INFO=<ID=KIND,Number=1,Type=String,Description="simulated site kind: snv, snv_motif, indel, multiallelic">',
                 '##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">',
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(p.donors)]
        gts = ["\t".join(f"{a}|{b}" for a, b in row) for row in self.gt.tolist()]
        body = [f"{r.chrom}\t{r.pos0 + 1}\tsim{i + 1}\t{r.ref}\t{r.alt}\t60\tPASS\tKIND={r.kind}\tGT\t{g}"
                for i, (r, g) in enumerate(zip(self.v.itertuples(), gts))]
        plain = self.out / "variants.vcf"
        plain.write_text("\n".join(head + body) + "\n")
        pysam.tabix_index(str(plain), preset="vcf", force=True)  # writes variants.vcf.gz + .tbi, removes the plain file

    def run(self):
        self.genome()
        self.elements()
        self.variants()
        self.haplotypes()
        self.copy_number()
        self.motif_effects()
        self.tissues()
        self.write_reference()
        self.write_vcf()
        self.reads_and_truth()
        self.els.to_csv(self.out / "elements.tsv", sep="\t", index=False)
        self.inst.to_csv(self.out / "motif_instances.tsv", sep="\t", index=False)
        act = pd.DataFrame(self.active, columns=list(self.p.tissues))
        act.insert(0, "element_id", self.els["element_id"])
        act.to_csv(self.out / "element_activity.tsv", sep="\t", index=False)
        files = sorted(str(f.relative_to(self.out)) for f in self.out.rglob("*") if f.is_file())
        (self.out / "manifest.json").write_text(json.dumps(
            {"key": self.p.key(), "params": dataclasses.asdict(self.p), "format_version": _FORMAT_VERSION, "files": files},
            indent=1, default=list))


def planted_windows(motif, n: int = 2000, *, window: int = 200, frac_as: float = 0.5, p_causal: float = 0.9,
                    p_motif_other: float = 0.1, gc: float = 0.42, random_state: int = 0) -> pd.DataFrame:
    """Labelled SNV windows with one planted JASPAR motif: a small, self-contained test set for
    ``allelic finetune`` and ``allelic motifs`` (does a model find the motif that makes SNVs allele-specific?).

    ``n`` windows of ``window`` bp, bases i.i.d. with GC fraction ``gc``, the SNV at ``window // 2``. A fraction
    ``frac_as`` is allele-specific (label 1); of those, ``p_causal`` carry a site sampled from ``motif`` (a JASPAR id
    or :class:`allelic.motifs.Motif`, pseudocount 0.8) on a random strand, placed so that the SNV falls on one of the
    motif's informative columns (top base probability >= 0.5): the reference allele is the site's base there and the
    alternative is the column's least likely base (the variant breaks the site). The other AS windows have no site
    (label noise, as real AS calls include indirect effects). Non-AS windows (label 0) carry a site with probability
    ``p_motif_other``, placed clear of the SNV (a motif alone does not make a SNV allele-specific); their alternative
    allele is a random other base.

    Returns a DataFrame: ``window_id``, ``sequence`` (reference allele), ``label``, ``alt_allele``, ``snv_offset``
    (0-based), ``alt_sequence``, and the truth: ``site_start`` (-1: none), ``site_strand``, ``site_at_snv``;
    ``.attrs["motif"]`` is the planted matrix id. Deterministic for ``random_state``."""
    m = motif if isinstance(motif, Motif) else load_jaspar([str(motif)])[0]
    w = m.width
    if window < 2 * w + 2:
        raise ValueError(f"window of {window} bp is too short for motif {m.matrix_id} (width {w})")
    if not (0 < frac_as < 1):
        raise ValueError(f"frac_as must be in (0, 1), got {frac_as}")
    rng = np.random.default_rng(random_state)
    probs = m.probabilities(0.8)                           # (4, w)
    informative = np.flatnonzero(probs.max(axis=0) >= 0.5)
    if not informative.size:
        raise ValueError(f"motif {m.matrix_id} has no column with a base of probability >= 0.5")
    bg = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    seqs = BASES[rng.choice(4, size=(n, window), p=bg)]
    label = (rng.random(n) < frac_as).astype(int)
    c = window // 2
    alt = np.empty(n, dtype="U1")
    start = np.full(n, -1)
    strand = np.full(n, "", dtype="U1")
    at_snv = np.zeros(n, bool)
    for i in range(n):
        plant = rng.random() < (p_causal if label[i] else p_motif_other)
        if plant:
            site = m.sample(1, random_state=rng)[0]
            minus = rng.random() < 0.5
            if minus:
                site = reverse_complement(site)
            if label[i]:
                j = int(rng.choice(informative))           # motif column under the SNV
                # on the minus strand column j of the motif sits at site position w-1-j, read complemented
                s0 = c - (w - 1 - j) if minus else c - j
                alt_base = ("TGCA" if minus else "ACGT")[int(np.argmin(probs[:, j]))]
                at_snv[i] = True
            else:
                # clear of the SNV: the site ends before c - 2 or starts after c + 2
                left = rng.random() < 0.5
                s0 = int(rng.integers(0, c - 2 - w)) if left else int(rng.integers(c + 3, window - w + 1))
                alt_base = None
            seqs[i, s0:s0 + w] = np.frombuffer(site.encode(), np.uint8)
            start[i], strand[i] = s0, "-" if minus else "+"
        else:
            alt_base = None
        if alt_base is None or alt_base == chr(seqs[i, c]):
            alt_base = "ACGT"[int(rng.choice([b for b in range(4) if BASES[b] != seqs[i, c]]))]
        alt[i] = alt_base
    ref = [bytes(r).decode() for r in seqs]
    df = pd.DataFrame({"window_id": [f"W{i + 1:06d}" for i in range(n)], "sequence": ref, "label": label,
                       "alt_allele": alt, "snv_offset": c})
    df["alt_sequence"] = [s[:c] + a + s[c + 1:] for s, a in zip(ref, alt)]
    df["site_start"], df["site_strand"], df["site_at_snv"] = start, strand, at_snv
    df.attrs["motif"] = m.matrix_id
    return df


def _site_score(site: np.ndarray, pwm: np.ndarray, strand: str) -> float:
    """Log-odds score (bits) of a site (uint8 ASCII array of the motif's width) on the given strand
    (:func:`allelic.pwm.scan`: ``-`` is the reverse-complement PWM over the same bases)."""
    return float(scan(site.tobytes().decode("ascii"), pwm)[0, 0, 0 if strand == "+" else 1])


def _betabinom_draw(rng, n: int, q: float, rho: float) -> int:
    if n == 0:
        return 0
    if rho <= 0:
        return rng.binomial(n, q)
    a, b = q * (1 - rho) / rho, (1 - q) * (1 - rho) / rho
    return rng.binomial(n, rng.beta(a, b))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m allelic.simulate", description="Write the simulated personal epigenome.")
    ap.add_argument("--preset", default="smoke", choices=list(PRESETS), help="parameter preset (default: smoke)")
    ap.add_argument("--out", help="output folder (default: data/simulated/<preset>-<hash>)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--windows", type=int, metavar="N",
                    help="instead: write N labelled SNV windows with one planted motif (--motif) to --out (TSV)")
    ap.add_argument("--motif", default="MA0138.3", help="JASPAR id planted by --windows (default REST, MA0138.3)")
    ap.add_argument("--window", type=int, default=200, help="window length for --windows")
    ap.add_argument("--random-state", type=int, default=0,
                    help="seed of the data set (or of --windows): another value writes a different data set")
    a = ap.parse_args(argv)
    if a.windows:
        if not a.out:
            ap.error("--windows needs --out FILE.tsv")
        planted_windows(a.motif, a.windows, window=a.window, random_state=a.random_state).to_csv(
            a.out, sep="\t", index=False)
        print(a.out)
        return 0
    sim = simulate(a.preset, a.out, force=a.force, random_state=a.random_state)
    print(sim.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
