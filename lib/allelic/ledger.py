"""A ledger of records removed by filters, so nothing is dropped silently.

Every filter in :mod:`allelic` that removes records appends one row per removed
record (or per group of identical removals) with the reason, to a
:class:`Ledger`. ``Ledger.table()`` returns the rows as a DataFrame with columns

``step``   name of the filter (e.g. ``"het_snvs"``, ``"count_alleles"``)
``source`` file or table the record came from
``record`` identifier of the record (e.g. ``"chr1:12345"`` or a line number)
``reason`` short, stable reason code (e.g. ``"not_heterozygous"``)
``detail`` free text (may be empty)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

LEDGER_COLUMNS = ["step", "source", "record", "reason", "detail"]


@dataclass
class Ledger:
    """Accumulates removed records. Cheap to append to; converted once with :meth:`table`."""

    rows: list = field(default_factory=list)

    def add(self, step: str, source: str, record: str, reason: str, detail: str = "") -> None:
        self.rows.append((step, str(source), str(record), reason, detail))

    def extend(self, step: str, source: str, records, reason: str, detail: str = "") -> None:
        """Record many removals that share one step, source and reason."""
        src = str(source)
        self.rows.extend((step, src, str(r), reason, detail) for r in records)

    def merge(self, other: "Ledger") -> "Ledger":
        self.rows.extend(other.rows)
        return self

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=LEDGER_COLUMNS)

    def summary(self) -> pd.DataFrame:
        """Counts of removed records per step and reason (columns ``step, reason, n``)."""
        t = self.table()
        if t.empty:
            return pd.DataFrame(columns=["step", "reason", "n"])
        return t.groupby(["step", "reason"], sort=True).size().rename("n").reset_index()
