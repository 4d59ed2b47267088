"""Compare's table: one row per model, what every row shares said once in the caption, the hyper-parameters that
differ highlighted. Drawn for app_pages/compare.py (no input widgets; its numbers come from cnnviz.compare)."""

from collections.abc import Iterable

import streamlit as st

from app_pages._shared import md_escape
from cnnviz import compare as cmp
from cnnviz.views import compare as cf

COLUMNS = {
    # Numbers are written by cf.TABLE_FORMATS (1.05G, 25.10%), through the Styler below, not by a column format.
    "best_val_top1": st.column_config.NumberColumn("best val top-1"),
    "best_val_top5": st.column_config.NumberColumn("best val top-5"),
    "shipped_top1": st.column_config.NumberColumn("shipped file top-1", help=cf.SHIPPED_HELP),
    "params": st.column_config.NumberColumn(help=cf.COUNT_HELP),
    "training-only params": st.column_config.NumberColumn(help=cf.COUNT_HELP),
    "macs": st.column_config.NumberColumn("MACs", help=cf.MACS_HELP),
    "peak_mem_bytes": st.column_config.NumberColumn("peak memory", format="bytes"),
    "device": st.column_config.TextColumn(help=cf.DEVICE_HELP),
    "train_time_s": st.column_config.NumberColumn("training time (s)", format="%.0f"),
    "images_per_s": st.column_config.NumberColumn("images/s", format="%.0f"),
}
HIGHLIGHT = {"background-color": "#fff3b0"}
# The per-class and most-confused tables hold fractions of a class's images: written as percentages like every
# accuracy on the page (they were bare fractions, 0.56 beside the table's 25.10%). Streamlit's own "percent"
# format suffices here: a class has 50 val images (10 in an evaluated subset), so no value needs two decimals.
CONFUSED_COLUMNS = {
    "count": st.column_config.NumberColumn(help="validation images of the true class predicted as this class"),
    "share": st.column_config.NumberColumn(format="percent", help="of the true class's validation images"),
}


def per_class_columns(models: Iterable[str]) -> dict:
    """Column formats of the per-class table: each model's accuracy on the class, and their spread."""
    columns = {m: st.column_config.NumberColumn(format="percent", help=f"{m}'s accuracy on the class")
               for m in models}
    columns["spread"] = st.column_config.NumberColumn(
        format="percent", help="best minus worst of the selected models' accuracies on the class, in points")
    return columns


def render_table(table: cmp.CompareTable) -> None:
    folded, shared_text = cf.fold_shared_columns(table.frame, md_escape)
    shown = table.frame.drop(columns=folded)
    hp_cols = [c for c in shown.columns if c.startswith("hp: ")]
    styled = shown.style.set_properties(subset=hp_cols, **HIGHLIGHT).format(cf.table_formats(shown))
    st.dataframe(styled, hide_index=True, column_config=COLUMNS)
    differing = f" ({', '.join(table.differing)})." if table.differing else " (none differ)."
    st.caption(f"{shared_text} Highlighted: hyper-parameters that differ between the selected models{differing} "
               f"{cmp.PARAMS_NOTE}".strip())
