"""Counts by reason and status for the current filter; choosing one narrows the filter."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

FACET_FIELDS = ("reason", "status")


class FacetPanel(OptionList):
    """Attribute down: ``show(facets)``; message up: ``Chosen(field, value)``."""

    @dataclass(eq=False)
    class Chosen(Message):
        field: str
        value: str

    def show(self, facets: dict[str, dict[str, int]] | None) -> None:
        highlighted = self.highlighted
        self.clear_options()
        if facets is None:
            self.add_option(Option(Text("counting…", style="dim"), disabled=True))
            return
        for field in FACET_FIELDS:
            counts = facets.get(field, {})
            self.add_option(Option(Text(field.capitalize(), style="bold underline"), disabled=True))
            if not counts:
                self.add_option(Option(Text("  none", style="dim"), disabled=True))
            for value, count in counts.items():
                label = Text(f"  {value or '(none)'}", no_wrap=True, overflow="ellipsis")
                label.append(f" {count:,}", style="dim")
                # an empty value cannot be written as a query term: shown, not choosable
                self.add_option(Option(label, id=f"{field}:{value}" if value else None))
        # the same choice stays highlighted only while the analyst is in the panel: restoring
        # an index from another query scrolled the panel to it, so what showed depended on
        # how the query was reached
        if self.has_focus and highlighted is not None and highlighted < self.option_count:
            self.highlighted = highlighted
        else:
            self.highlighted = None
            self.scroll_home(animate=False)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            field, _, value = event.option.id.partition(":")
            self.post_message(self.Chosen(field, value))


def narrow(query_text: str, field: str, value: str) -> str:
    """The filter with ``field:value`` in place of any term on the same field."""
    import shlex

    try:
        words = shlex.split(query_text)
    except ValueError:
        words = query_text.split()
    kept = [w for w in words if not w.lower().startswith(f"{field}:")]
    term = f"{field}:{shlex.quote(value)}"
    return " ".join([*(shlex.quote(w) if " " in w else w for w in kept), term]).strip()
