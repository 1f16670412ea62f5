"""Your own data: a sample sheet of alignments, a phased personal VCF and the reference genome, checked before any
heavy work.

    ALLELIC_SAMPLES=path/samples.tsv ALLELIC_VCF=path/phased.vcf.gz ALLELIC_REFERENCE=path/genome.fa make book

The sheet (tab-separated, one row per BAM or CRAM; paths relative to the sheet's folder):

=============  ========  ===================================================================================
column         required  meaning
=============  ========  ===================================================================================
``sample``     yes       a unique name (letters, digits, ``_ . -``): the file name of its count table
``donor``      yes       the individual: a sample column of the VCF
``tissue``     yes       tissue or cell type
``assay``      yes       CTCF, POL2, H3K4me3, H3K27ac, RNA, ... (any name)
``bam``        yes       a coordinate-sorted, indexed BAM (``.bai``/``.csi``) or CRAM (``.crai``), decoded
                         against the reference
``peaks``      no        a BED of the assay's peaks in that sample (the binding sets of chapter 05 use them)
``replicate``  no        the replicate's label; rows sharing donor, tissue and assay are replicates of one
                         *unit* (numbered 1, 2, ... in sheet order when the column is absent)
=============  ========  ===================================================================================

The VCF is bgzipped and indexed, with one sample column per donor; phased genotypes (``0|1``) give the haplotype
columns, unphased ones (``0/1``) are counted and tested on reference/alternative with the haplotype columns empty.

:func:`load` checks, and each error names the sheet's line, the sample and the file: a missing or unindexed
BAM/CRAM, a donor absent from the VCF, duplicate sample names or replicate labels, names a file name cannot hold,
contig names that differ between the BAMs, the VCF and the FASTA (``chr1`` vs ``1``, ``chrM`` vs ``MT``: mapped
automatically when the mapping is unambiguous, and said so in :attr:`SampleSheet.notes`; otherwise an error showing
the contig map that fixes it), and a FASTA whose contig lengths disagree with a BAM header or the VCF header
(another genome build). Reference alleles that differ from the FASTA are an error naming the SNV
(:meth:`SampleSheet.het_snvs`).

Coordinates inside the book are the FASTA's: VCF contigs are renamed to the FASTA's names on reading, and each BAM
is read through its own map back to its header's names. A contig map file (``ALLELIC_CONTIG_MAP``, ``--contig-map``)
is a two-column TSV ``name<TAB>reference name`` for names of the VCF or the BAMs that no rule maps.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from .bamscan import _quiet_htslib
from .ledger import Ledger
from .reference import fetch_bases, open_fasta, ref_mismatches

REQUIRED = ("sample", "donor", "tissue", "assay", "bam")
OPTIONAL = ("peaks", "replicate")
ENV = {"samples": "ALLELIC_SAMPLES", "vcf": "ALLELIC_VCF", "reference": "ALLELIC_REFERENCE"}
CONTIG_MAP_ENV = "ALLELIC_CONTIG_MAP"
#: what a sample, donor, tissue, assay or replicate name may hold: it becomes part of file names and workflow jobs
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INDEX = {".bam": (".bai", ".csi"), ".cram": (".crai",)}  # FILE.bam.bai or FILE.bai, ...


class SampleSheetError(ValueError):
    """A sample sheet, VCF or reference that cannot be used as given; the message names the line and the file."""


@dataclass
class SampleSheet:
    """A checked data set: the sheet's rows with absolute paths, the VCF, the reference and the contig names.

    ``table``: the sheet's columns plus ``replicate`` (str) and ``unit`` (``<donor>_<tissue>_<assay>``), one row
    per BAM/CRAM. ``vcf_contigs``: VCF contig -> FASTA contig. ``bam_contigs``: per sample, FASTA contig -> the
    BAM's name, only where they differ. ``notes``: what was mapped or skipped automatically, in words. ``truth``:
    the simulator's ground truth when the data set is the simulator's (``None`` for your own data)."""

    path: Path
    vcf: Path
    reference: Path
    table: pd.DataFrame
    vcf_contigs: dict = field(default_factory=dict)
    bam_contigs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    truth_path: Path | None = None
    label: str = "sample sheet"
    _het: dict = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def fasta(self) -> Path:
        return self.reference

    @property
    def donors(self) -> list[str]:
        return list(dict.fromkeys(self.table["donor"]))

    @property
    def assays(self) -> list[str]:
        return list(dict.fromkeys(self.table["assay"]))

    @property
    def has_truth(self) -> bool:
        return self.truth_path is not None

    def samples(self) -> pd.DataFrame:
        return self.table.copy()

    def truth(self) -> pd.DataFrame | None:
        """The planted truth (simulator only), else ``None``: the sections that need it are skipped."""
        return None if self.truth_path is None else pd.read_csv(self.truth_path, sep="\t")

    def het_snvs(self, donor: str):
        """The donor's heterozygous biallelic SNVs (:func:`allelic.counts.read_het_snvs`) in the FASTA's contig
        names, their reference alleles checked against the FASTA (a mismatch is a ValueError naming the SNV: another
        genome build). SNVs on contigs the FASTA lacks go to the ledger (``contig_not_in_reference``); unphased
        genotypes keep empty haplotype columns. Read once per donor and kept."""
        if donor not in self._het:
            from .variants import read_het_snvs

            v = read_het_snvs(self.vcf, donor, contig_map=self.vcf_contigs)
            t = v.table
            fasta = open_fasta(self.reference)
            try:
                off = ~t["chrom"].isin(set(fasta.references))
                v.ledger.extend("samplesheet", str(self.vcf), (t.loc[off, "chrom"] + ":" + t.loc[off, "pos"].astype(str))
                                .tolist(), "contig_not_in_reference", f"donor={donor}; contig absent from {self.reference.name}")
                t = t[~off].reset_index(drop=True)
                ref_mismatches(self.vcf, t["chrom"].to_numpy(), t["pos"].to_numpy(), t["ref"].to_numpy(),
                               fetch_bases(fasta, t["chrom"], t["pos"]),
                               hint=f"the VCF and {self.reference.name} are not the same genome build")
            finally:
                fasta.close()
            unphased = ~t["phased"].to_numpy()
            t.loc[unphased, ["hap1_allele", "hap2_allele"]] = None
            v.table = t
            self._het[donor] = v
        return self._het[donor]

    def phasing(self) -> pd.DataFrame:
        """Per donor: heterozygous SNVs, how many are unphased, and their share (reads the VCF once per donor)."""
        rows = []
        for d in self.donors:
            t = self.het_snvs(d).table
            rows.append((d, len(t), int((~t["phased"]).sum())))
        out = pd.DataFrame(rows, columns=["donor", "het_snvs", "unphased"])
        out["unphased_share"] = (out["unphased"] / out["het_snvs"].clip(lower=1)).round(4)
        return out

    def contig_map(self, sample: str) -> dict:
        """FASTA contig -> contig of this sample's BAM/CRAM, where they differ (``count_alleles(contig_map=)``)."""
        return dict(self.bam_contigs.get(sample, {}))

    def key(self) -> str:
        """What identifies this data set in a cache key: its rows, and the name, size and time of the VCF, the
        reference and every peaks file."""
        from . import cache

        peaks = [cache.file_stamp(p) for p in self.table["peaks"] if p]
        return cache.key("samplesheet", cache.table_digest(self.table), cache.file_stamp(self.vcf),
                         cache.file_stamp(self.reference), peaks)

    def summary(self) -> pd.DataFrame:
        """Samples and replicates per donor and assay."""
        return self.table.groupby(["donor", "assay"]).size().unstack(fill_value=0)


# ---------------------------------------------------------------------------------------------------------------
# reading the sheet
# ---------------------------------------------------------------------------------------------------------------
def _where(path: Path, i: int, sample: str | None = None) -> str:
    return f"{path}: line {i + 2}" + (f" (sample {sample!r})" if sample else "")


def read_sheet(path) -> pd.DataFrame:
    """The sheet's rows with ``bam``/``peaks`` made absolute (relative to the sheet's folder), ``replicate`` (str)
    and ``unit``. Checks the columns, empty fields, names (:data:`NAME`), duplicate samples and duplicate
    replicate labels of one unit; raises :class:`SampleSheetError` naming the line. Files are checked by
    :func:`load`."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SampleSheetError(f"{path}: sample sheet not found")
    try:
        t = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SampleSheetError(f"{path}: cannot be read as a tab-separated sample sheet ({exc})") from None
    t.columns = [c.strip() for c in t.columns]
    missing = [c for c in REQUIRED if c not in t.columns]
    if missing:
        raise SampleSheetError(f"{path}: missing column(s) {', '.join(missing)}; a sample sheet has the columns "
                               f"{', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)}), tab-separated")
    if t.empty:
        raise SampleSheetError(f"{path}: no samples (only a header)")
    t = t.apply(lambda s: s.str.strip())
    for i, row in t.iterrows():
        for c in REQUIRED:
            if not row[c]:
                raise SampleSheetError(f"{_where(path, i, row['sample'] or None)}: column {c!r} is empty")
        for c in ("sample", "donor", "tissue", "assay", *(("replicate",) if "replicate" in t else ())):
            if row[c] and not NAME.fullmatch(row[c]):
                bad = sorted(set(re.sub(r"[A-Za-z0-9_.-]", "", row[c]))) or [row[c][0]]
                raise SampleSheetError(f"{_where(path, i, row['sample'])}: {c} {row[c]!r} holds {''.join(bad)!r}; "
                                       f"names become file names and may hold only letters, digits, '_', '.' and '-' "
                                       f"(and start with a letter or digit)")
    dup = t["sample"].duplicated(keep=False)
    if dup.any():
        name = t.loc[dup, "sample"].iloc[0]
        lines = [str(i + 2) for i in np.flatnonzero(t["sample"].to_numpy() == name)]
        raise SampleSheetError(f"{path}: lines {', '.join(lines)}: sample name {name!r} is used more than once; "
                               f"sample names must be unique (replicates of one donor, tissue and assay need "
                               f"names of their own)")
    t["unit"] = t["donor"] + "_" + t["tissue"] + "_" + t["assay"]
    if "replicate" not in t or (t["replicate"] == "").all():
        t["replicate"] = (t.groupby("unit", sort=False).cumcount() + 1).astype(str)
    else:
        empty = t["replicate"] == ""
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise SampleSheetError(f"{_where(path, i, t.loc[i, 'sample'])}: column 'replicate' is empty (fill it in "
                                   f"on every row, or drop the column to number replicates in sheet order)")
    dup = t.duplicated(["unit", "replicate"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise SampleSheetError(f"{_where(path, i, t.loc[i, 'sample'])}: replicate {t.loc[i, 'replicate']!r} of "
                               f"{t.loc[i, 'unit']} appears more than once")
    for c in ("bam", "peaks"):
        if c in t:
            t[c] = [str((path.parent / Path(v).expanduser()).resolve()) if v else "" for v in t[c]]
    if "peaks" not in t:
        t["peaks"] = ""
    return t.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# contig names
# ---------------------------------------------------------------------------------------------------------------
def read_contig_map(path) -> dict:
    """A two-column TSV ``name<TAB>reference name`` (no header; ``#`` comments) as a dict; errors name the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SampleSheetError(f"{path}: contig map not found")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise SampleSheetError(f"{path}: line {n}: expected 'name<TAB>reference name', got {line!r}")
        out[parts[0].strip()] = parts[1].strip()
    return out


def _candidates(name: str) -> list[str]:
    c = [name[3:]] if name.startswith("chr") else [f"chr{name}"]
    if name in ("MT", "M", "chrM", "chrMT"):
        c += ["chrM", "MT", "M", "chrMT"]
    return [x for x in dict.fromkeys(c) if x != name]


def match_contigs(names, reference: list[str], *, given: dict | None = None) -> tuple[dict, list[str]]:
    """Map ``names`` (a file's contigs) onto ``reference`` (the FASTA's): a name found in the FASTA keeps it, else
    the ``given`` map, else the ``chr`` prefix added or removed (``chrM``/``MT`` included). Returns the renames
    (only names that change) and the names with no match. Raises :class:`SampleSheetError` (the message holds the
    map that fixes it) when two names land on one reference contig or a name has several possible matches."""
    ref = set(reference)
    given = given or {}
    renames, unmatched, ambiguous = {}, [], []
    for n in names:
        if n in given:
            renames[n] = given[n]
        elif n in ref:
            continue
        else:
            hits = [c for c in _candidates(n) if c in ref]
            if len(hits) == 1:
                renames[n] = hits[0]
            elif hits:
                ambiguous.append((n, hits))
            else:
                unmatched.append(n)
    targets = pd.Series([renames.get(n, n) for n in names if n not in unmatched], dtype=object)
    clash = targets[targets.duplicated(keep=False)]
    if ambiguous or len(clash):
        why = (f"{ambiguous[0][0]!r} could be any of {ambiguous[0][1]}" if ambiguous else
               f"{sorted(n for n in names if renames.get(n, n) == clash.iloc[0])} all map to {clash.iloc[0]!r}")
        raise SampleSheetError(why)
    return renames, unmatched


def _map_hint(renames: dict, unmatched, reference: dict, lengths: dict | None = None) -> str:
    """The contig map that would fix it: the renames found, and for names with no rule the reference contig of the
    same length where exactly one has it."""
    by_len = pd.Series(list(reference), index=list(reference.values()), dtype=object)
    lines = [f"{a}\t{b}" for a, b in list(renames.items())[:3]]
    for u in list(unmatched)[:3]:
        same = by_len.get(lengths.get(u), None) if lengths else None
        guess = same if isinstance(same, str) else f"<one of {', '.join(list(reference)[:3])}, ...>"
        lines.append(f"{u}\t{guess}")
    return ("write a contig map (name<TAB>reference name per line; ALLELIC_CONTIG_MAP or --contig-map), e.g.\n    "
            + "\n    ".join(lines or ["1\tchr1"]))


# ---------------------------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------------------------
def _index_of(bam: Path) -> Path | None:
    for ext in _INDEX.get(bam.suffix.lower(), ()):
        for cand in (Path(f"{bam}{ext}"), bam.with_suffix(ext)):
            if cand.is_file():
                return cand
    return None


def _bam_header(path: Path, where: str) -> dict:
    try:
        with _quiet_htslib():
            with pysam.AlignmentFile(str(path), "r", require_index=False, check_sq=False) as af:
                return dict(zip(af.references, af.lengths))
    except (ValueError, OSError) as exc:
        raise SampleSheetError(f"{where}: {path} is not a readable BAM/CRAM ({exc})") from None


def _vcf_contigs(vcf: Path) -> tuple[list[str], dict, list[str]]:
    """(contigs holding records, header lengths, samples)."""
    try:
        with _quiet_htslib():
            vf = pysam.VariantFile(str(vcf))
    except (ValueError, OSError) as exc:
        raise SampleSheetError(f"{vcf}: not a readable VCF/BCF ({exc})") from None
    with vf:
        lengths = {c: r.length for c, r in vf.header.contigs.items() if r.length}
        samples = list(vf.header.samples)
        try:
            with_records = list(vf.index.keys())
        except (AttributeError, ValueError):
            with_records = []
    if not with_records:
        with pysam.TabixFile(str(vcf)) as tf:
            with_records = list(tf.contigs)
    return with_records, lengths, samples


def _to_reference(where: str, contigs: str, header: str, names: list, lengths: dict, ref_len: dict,
                  reference: Path, given: dict) -> tuple[dict, list]:
    """:func:`match_contigs` of one file's contig ``names`` onto the reference's, with its contig ``lengths`` checked
    against the reference's; errors begin with ``where`` and name the file (``contigs``: "the contigs of X",
    ``header``: where its lengths come from)."""
    try:
        renames, unmatched = match_contigs(names, list(ref_len), given=given)
    except SampleSheetError as exc:
        raise SampleSheetError(f"{where}: {contigs} cannot be matched to {reference.name} unambiguously ({exc}); "
                               f"{_map_hint({}, [], ref_len)}") from None
    if names and len(unmatched) == len(names):
        raise SampleSheetError(f"{where}: none of {contigs} ({names[:5]}) is in {reference} ({list(ref_len)[:5]}); "
                               f"{_map_hint(renames, unmatched, ref_len, lengths)}")
    for c, n in lengths.items():
        r = renames.get(c, c)
        if r in ref_len and ref_len[r] != n:
            raise SampleSheetError(f"{where}: contig {c!r} is {n:,} bp in {header} but {ref_len[r]:,} bp in "
                                   f"{reference}: not the same genome build")
    return renames, unmatched


def load(samples, vcf, reference, *, contig_map=None, truth=None, label: str = "sample sheet",
         only=None) -> SampleSheet:
    """Read and check a data set (module docstring); returns a :class:`SampleSheet`.

    ``contig_map``: a dict or a map file (:func:`read_contig_map`) for names no rule maps; ``truth``: the
    simulator's ``truth.tsv.gz`` (never set for your own data); ``only``: check the files of these samples only (a
    workflow job that counts one of them). Reads only file headers and indexes: seconds for thousands of BAMs. Raises :class:`SampleSheetError`/FileNotFoundError naming the line, sample and file."""
    sheet_path = Path(samples).expanduser().resolve()
    table = read_sheet(sheet_path)
    vcf, reference = Path(vcf).expanduser().resolve(), Path(reference).expanduser().resolve()
    given = read_contig_map(contig_map) if isinstance(contig_map, (str, Path)) else dict(contig_map or {})
    notes = []

    # reference
    fasta = open_fasta(reference)
    ref_len = dict(zip(fasta.references, fasta.lengths))
    fasta.close()
    # VCF: bgzipped and indexed, donors present, contigs matched and lengths agreeing
    if not vcf.is_file():
        raise SampleSheetError(f"{vcf}: VCF not found")
    if not any(Path(str(vcf) + s).is_file() for s in (".tbi", ".csi")):
        raise SampleSheetError(f"{vcf}: no index (.tbi or .csi); bgzip and index it: `bgzip x.vcf && tabix -p vcf "
                               f"x.vcf.gz` (or `bcftools index -t {vcf.name}`)")
    vcf_with_records, vcf_len, vcf_samples = _vcf_contigs(vcf)
    absent = ~table["donor"].isin(vcf_samples)
    if absent.any():
        i = int(np.flatnonzero(absent)[0])
        raise SampleSheetError(f"{_where(sheet_path, i, table.loc[i, 'sample'])}: donor {table.loc[i, 'donor']!r} is not "
                               f"a sample of {vcf} (its samples: {', '.join(vcf_samples[:10])}"
                               f"{' ...' if len(vcf_samples) > 10 else ''})")
    vcf_map, vcf_off = _to_reference(str(vcf), "its contigs", "the VCF header",
                                     list(dict.fromkeys([*vcf_with_records, *vcf_len])), vcf_len, ref_len, reference,
                                     given)
    if vcf_map:
        notes.append(f"VCF contigs renamed to the reference's: {_shown_map(vcf_map)}")
    off = [c for c in vcf_with_records if c in vcf_off]
    if off:
        notes.append(f"VCF contigs absent from the reference, their SNVs not counted: {', '.join(off[:10])}")

    # alignments: present, indexed, contigs and lengths agreeing with the reference
    bam_maps, renamed = {}, {}
    unknown = sorted(set(only or ()) - set(table["sample"]))
    if unknown:
        raise SampleSheetError(f"{sheet_path}: no sample {', '.join(map(repr, unknown))}")
    for i, row in table.iterrows():
        if only is not None and row["sample"] not in only:
            continue
        where, bam = _where(sheet_path, i, row["sample"]), Path(row["bam"])
        if not bam.is_file():
            raise SampleSheetError(f"{where}: alignment file {bam} does not exist")
        if bam.suffix.lower() not in _INDEX:
            raise SampleSheetError(f"{where}: {bam} is neither a .bam nor a .cram file")
        if _index_of(bam) is None:
            raise SampleSheetError(f"{where}: {bam} has no index ({' or '.join(_INDEX[bam.suffix.lower()])}); "
                                   f"create it with `samtools index {bam}`")
        if row["peaks"] and not Path(row["peaks"]).is_file():
            raise SampleSheetError(f"{where}: peaks file {row['peaks']} does not exist")
        header = _bam_header(bam, where)
        to_ref, _ = _to_reference(where, f"the contigs of {bam}", f"the header of {bam}", list(header), header,
                                  ref_len, reference, given)
        if to_ref and bam.suffix.lower() == ".cram":
            raise SampleSheetError(f"{where}: {bam} names its contigs differently from {reference.name} "
                                   f"({_shown_map(to_ref)}); a CRAM is decoded against the FASTA it was written with")
        if to_ref:
            bam_maps[row["sample"]] = {r: c for c, r in to_ref.items()}
            renamed[_shown_map(to_ref)] = renamed.get(_shown_map(to_ref), 0) + 1
    for m, n in renamed.items():
        notes.append(f"BAM contigs read under the reference's names in {n} file(s): {m}")
    return SampleSheet(path=sheet_path, vcf=vcf, reference=reference, table=table, vcf_contigs=vcf_map,
                       bam_contigs=bam_maps, notes=notes, truth_path=None if truth is None else Path(truth),
                       label=label)


def _shown_map(m: dict) -> str:
    items = list(m.items())
    return ", ".join(f"{a} -> {b}" for a, b in items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")


# ---------------------------------------------------------------------------------------------------------------
# where the book's data come from
# ---------------------------------------------------------------------------------------------------------------
def from_env(only=None) -> SampleSheet | None:
    """The data set named by ``ALLELIC_SAMPLES``, ``ALLELIC_VCF`` and ``ALLELIC_REFERENCE`` (and optionally
    ``ALLELIC_CONTIG_MAP``), checked (``only``: see :func:`load`); ``None`` when none of the three is set. Some but
    not all set is an error."""
    vals = {k: os.environ.get(v) or None for k, v in ENV.items()}
    if not any(vals.values()):
        return None
    unset = [ENV[k] for k, v in vals.items() if v is None]
    if unset:
        raise SampleSheetError(f"{', '.join(unset)} not set: your own data need all three of "
                               f"{', '.join(ENV.values())} (the sample sheet, the phased VCF, the reference FASTA)")
    return load(vals["samples"], vals["vcf"], vals["reference"], contig_map=os.environ.get(CONTIG_MAP_ENV) or None,
                label="your data", only=only)


def from_simulation(sim) -> SampleSheet:
    """A :class:`allelic.simulate.Simulation` as a checked data set, with its truth."""
    return load(sim.root / "samples.tsv", sim.vcf, sim.fasta, truth=sim.root / "truth.tsv.gz", label="simulator")


def book_data(simulation="smoke", random_state: int = 0, *, only=None) -> SampleSheet:
    """The data the chapters run on: your own (:func:`from_env`) when ``ALLELIC_SAMPLES`` is set, else the
    simulator's data set of this preset and seed (``only``: see :func:`load`)."""
    own = from_env(only)
    if own is not None:
        return own
    from . import simulate

    return from_simulation(simulate.simulate(simulation, random_state=random_state))
