"""Architectures: pick a CNN -> its card, per-layer table, charts, block diagram, receptive fields; compare."""

import streamlit as st

import cnnviz
from app_pages._shared import link_to, show_error, variant_widgets
from cnnviz.summary import layer_table
from cnnviz.views import architectures as fa


def columns(exact: bool = False) -> dict:
    """Column formats: Streamlit's compact K/M/B (or exact integers with separators) for counts, kB/MB for bytes.
    The table keeps Streamlit's own formats (no Styler): formatting through a Styler took
    about 30 ms a rerun for ResNet-152's 464 rows on the 2-core dev CPU, against under 1 ms without."""
    num = st.column_config.NumberColumn
    cfg = {c: num(format="localized" if exact else "compact", help=fa.COLUMN_HELP.get(c)) for c in fa.COUNT_COLUMNS}
    cfg |= {c: num(format="localized" if exact else "bytes", help=fa.COLUMN_HELP.get(c)) for c in fa.BYTE_COLUMNS}
    cfg |= {c: num(help=fa.COLUMN_HELP[c]) for c in ("receptive field", "jump")}
    return cfg | {"layer": st.column_config.TextColumn(width="medium", pinned=True, help="dotted module path")}


@st.cache_data(show_spinner="Computing the layer table...", max_entries=64)
def table_for(arch: str, variant: tuple, side: int | None, classes: int | None, dtype: str):
    shape = fa.input_shape(arch, side, classes, **dict(variant))
    return layer_table(arch, input_size=shape, dtype=dtype, num_classes=classes, **dict(variant))


@st.cache_data(show_spinner="Drawing the block diagram...", max_entries=64)
def diagram_for(arch: str, variant: tuple, side: int | None, classes: int | None) -> str:
    return fa.block_diagram(table_for(arch, variant, side, classes, "float32"), **dict(variant))


def variant_choice(card) -> tuple:
    """The options the user changed from the card's defaults (the table cache key)."""
    values = variant_widgets(card, "arch")
    return tuple(sorted((k, v) for k, v in values.items() if v != card.default_variant.get(k)))


def single() -> None:
    names = cnnviz.list_models()
    c = st.columns([2, 2, 1, 1, 1, 1])
    arch = c[0].selectbox("Architecture", names, index=names.index("vgg16") if "vgg16" in names else 0,
                          format_func=lambda n: cnnviz.get_card(n).display_name, key="arch_name")
    card = cnnviz.get_card(arch)
    paper = f"paper's ({card.paper_input[1]}x{card.paper_input[2]})"
    mode = c[1].radio("Input size", [paper, "64x64 (Tiny ImageNet)", "custom"], horizontal=True, key="arch_mode")
    side = None if mode == paper else 64 if mode.startswith("64") else int(c[2].number_input(
        "Side (px)", 1, 1024, 128, key="arch_side"))
    classes = int(c[3].number_input("Classes", 1, 100_000, card.paper_classes if side is None else 200,
                                    key=f"arch_classes_{side is None}"))
    dtype = c[4].selectbox("dtype", ["float32", "float16", "bfloat16"], key="arch_dtype")
    batch = int(c[5].number_input("Batch size", 1, 4096, 64, key="arch_batch"))
    variant = variant_choice(card) if card.variants else ()
    table, problem = None, None
    try:
        table = table_for(arch, variant, side, classes, dtype)
    except (ValueError, TypeError) as e:  # InputSizeError is a ValueError: a message, not a traceback
        problem = (str(e), e)
    except Exception as e:  # noqa: BLE001 - the details go to the server log
        problem = (f"Could not build the table for {card.display_name} ({type(e).__name__}); "
                   "the details are in the server log.", e)
    with st.expander(f"Model card: {card.display_name}", expanded=False):
        st.markdown(fa.card_markdown(card, table))
    if problem:
        return show_error(*problem)
    for col, (label, (value, exact)) in zip(st.columns(6), fa.totals(table, batch).items(), strict=True):
        col.metric(label, value, help=exact)
    st.caption(f"{fa.exact_totals(table)} {fa.MACS_NOTE} {fa.UNITS_NOTE} Training memory: weights + gradients + SGD momentum "
               "+ saved activations.")
    for note in fa.writeup_notes(arch, table):
        st.info(note, icon=":material/fact_check:")
    st.markdown("  \n".join(fa.highlights(table)))
    exact = st.toggle("Exact numbers in the table (instead of K/M/B)", key="arch_exact")
    st.dataframe(fa.display_frame(table), column_config=columns(exact), hide_index=True, height=420,
                 key="arch_table")
    stem = f"{arch}_{'x'.join(map(str, table.input))}_{classes}_{dtype}"
    with st.container(horizontal=True):
        st.download_button("Download CSV", table.to_csv(), f"{stem}.csv", "text/csv", key="arch_csv",
                           icon=":material/download:")
        st.download_button("Download Markdown", table.to_markdown(), f"{stem}.md", "text/markdown",
                           key="arch_md", icon=":material/download:")
    # Lazy tabs: only the open one is drawn (the browser gets one chart per rerun, not five).
    tabs = st.tabs(["Parameters", "Activation memory", "MACs", "Receptive field", "Block diagram"],
                   key="arch_charts", on_change="rerun")
    for tab, metric in zip(tabs[:3], fa.METRICS, strict=True):
        if tab.open:
            tab.plotly_chart(fa.layer_chart(table, metric), key=f"arch_chart_{metric}")
    if tabs[3].open:
        tabs[3].plotly_chart(fa.receptive_field_chart(table), key="arch_chart_rf")
    if tabs[4].open:
        try:
            tabs[4].graphviz_chart(diagram_for(arch, variant, side, classes))
        except Exception as e:  # noqa: BLE001 - the details go to the server log
            with tabs[4]:
                show_error(f"Could not draw the diagram of {card.display_name} ({type(e).__name__}).", e)


def compare() -> None:
    names = cnnviz.list_models()
    default = [n for n in ("alexnet", "zfnet", "vgg16", "googlenet", "resnet50", "resnet152", "nin") if n in names]
    chosen = st.multiselect("Architectures", names, default=default, key="cmp_names",
                            format_func=lambda n: cnnviz.get_card(n).display_name)
    tiny = st.toggle("At 64x64 with 200 classes (Tiny ImageNet) instead of each paper's input", key="cmp_tiny")
    entries = []
    for n in chosen:  # one architecture that cannot be built this way does not hide the others
        try:
            entries.append((cnnviz.get_card(n), table_for(n, (), 64 if tiny else None, 200 if tiny else None,
                                                          "float32")))
        except (ValueError, TypeError) as e:
            show_error(f"{cnnviz.get_card(n).display_name} is left out: {e}", e)
    if not entries:
        return st.info("Pick two or more architectures.")
    frame = fa.compare_frame(entries)
    formats = fa.compare_formats(frame)
    # no column format where the Styler writes the cells (cnnviz's K/M/G, as the cards and the chart below)
    styled = {c: st.column_config.NumberColumn(help=fa.COLUMN_HELP.get(c)) for c in formats}
    st.dataframe(frame.style.format(formats), column_config=columns() | styled, hide_index=True, key="cmp_table")
    metric = st.radio("Accuracy", ["top5", "top1"], horizontal=True, key="cmp_metric",
                      format_func=lambda m: {"top1": "top-1", "top5": "top-5"}[m])
    paper = [(c, table_for(c.name, (), None, None, "float32")) for c, _ in entries]
    st.plotly_chart(fa.accuracy_vs_macs_chart(paper, metric), key="cmp_chart")
    st.caption("Accuracies are the papers' own ImageNet figures (settings differ: see each card's note); MACs "
               f"are ours at the paper's input. {fa.MACS_NOTE} {fa.UNITS_NOTE}")
    link_to("app_pages/compare.py", "The same families trained on Tiny ImageNet under one recipe: Compare opens "
            "on the zoo", ":material/compare_arrows:")


st.title("Architectures")
one, many = st.tabs(["One architecture", "Compare architectures"], key="arch_view", on_change="rerun")
if one.open:
    with one:
        single()
if many.open:
    with many:
        compare()
