"""Tables that fit the terminal.

Below ``WIDE`` columns (an 80x24 ssh session) a table shows only its key columns, those
an administrator needs to recognise a row and act on it, some of them narrower; from
``WIDE`` on it shows them all. The table keeps every row's cells, so it can lay itself
out again when the terminal is resized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from textual.widgets import DataTable

from appliance.tui.models import clip

WIDE = 100      # terminal columns from which tables show every column (and screens get class -wide)


def cursor_key(table: DataTable) -> str | None:
    """The row key under a DataTable's cursor, or None when the table is empty."""
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


@dataclass(frozen=True)
class Column:
    label: str
    key: str                            # the cell's key in a row's dict, and the DataTable's column key
    width: int | None = None            # fixed width on a wide terminal (cells are cut); None: as wide as its cells
    narrow: bool = True                 # shown below WIDE columns too
    narrow_width: int | None = None     # its width there; None: as wide as its cells


class FitTable(DataTable):
    """A DataTable whose rows are dicts of cells by column key (``set_row``, ``drop_row``,
    ``replace_rows``), shown in the columns that fit the terminal (``fit``)."""

    def __init__(self, columns: Sequence[Column], **kwargs):
        super().__init__(**kwargs)
        self._all = tuple(columns)
        self._layout: tuple[tuple[Column, int | None], ...] = ()    # the columns shown, with their widths
        self._cells: dict[str, dict[str, str]] = {}                  # row key -> its cells, in row order

    def on_mount(self) -> None:
        self.fit(self.app.size.width)

    def fit(self, terminal_width: int) -> None:
        """Show the columns for this terminal width (the screen calls it on every resize)."""
        wide = terminal_width >= WIDE
        layout = tuple((c, c.width) if wide else (c, c.narrow_width) for c in self._all if wide or c.narrow)
        if layout == self._layout:
            return
        self._layout = layout
        keep = cursor_key(self)
        self.clear(columns=True)
        for column, width in layout:
            self.add_column(column.label, key=column.key, width=width)
        for key, cells in self._cells.items():
            self.add_row(*self._shown(cells), key=key)
        self._move_to(keep)

    def _shown(self, cells: dict[str, str]) -> list[str]:
        return [self._cell(cells[column.key], width) for column, width in self._layout]

    @staticmethod
    def _cell(text: str, width: int | None) -> str:
        # a cut cell ends in '…', so nobody takes it for the whole value
        return text if width is None else clip(text, width)

    def _move_to(self, key: str | None) -> None:
        if key in self._cells:
            self.move_cursor(row=self.get_row_index(key))

    def set_row(self, key: str, cells: dict[str, str]) -> None:
        """Add a row at the end, or change the cells of the row ``key`` that differ."""
        old = self._cells.get(key)
        self._cells[key] = cells
        if not self._layout:
            return      # not laid out yet: fit() shows it
        if old is None:
            self.add_row(*self._shown(cells), key=key)
            return
        for column, width in self._layout:
            if old[column.key] != cells[column.key]:
                self.update_cell(key, column.key, self._cell(cells[column.key], width))

    def drop_row(self, key: str) -> None:
        if self._cells.pop(key, None) is not None and self._layout:
            self.remove_row(key)

    def replace_rows(self, rows: Sequence[tuple[str, dict[str, str]]], prefer: str | None = None) -> None:
        """Show exactly ``rows``, keeping the cursor on the same key when it is still there
        (else on ``prefer``)."""
        keep = cursor_key(self) or prefer
        self.clear_rows()
        for key, cells in rows:
            self.set_row(key, cells)
        self._move_to(keep if keep in self._cells else prefer)

    def clear_rows(self) -> None:
        self._cells.clear()
        self.clear()

    def row_keys(self) -> list[str]:
        return list(self._cells)
