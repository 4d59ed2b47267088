"""Training: a form that starts a detached job (cnnviz.training.jobs), and a fragment that polls the run folder."""

import streamlit as st

from app_pages._data_widgets import prepare_panel
from app_pages._run_widgets import act, await_starting_run
from app_pages._shared import md_escape, show_error, variant_widgets
from cnnviz import get_card, list_models
from cnnviz.paths import checkpoints_dir
from cnnviz.training import jobs
from cnnviz.training.runs import list_runs, read_run
from cnnviz.views import training as tv


@st.cache_data(show_spinner="Measuring a training step on this machine...", max_entries=64)
def measured_step(arch: str, variant: dict, batch: int, device: str) -> dict:
    return tv.measure_train_step(arch, variant, batch, device)


def estimate(arch: str, variant: tuple, data, batch: int, device: str) -> str:  # an earlier run's, else measured
    return tv.epoch_estimate(arch, {k: v for k, v in variant if v is not None}, data, batch, device, list_runs(),
                             measure=measured_step).text


st.title("Training")
names, choices = list_models(), tv.dataset_choices()


def follow_defaults(variant_only: bool = False) -> None:
    """The form's defaults follow the dataset (and, for a demo variant, the architecture): applied at once."""
    data = st.session_state.get("train_data", choices[0])
    for key, value in tv.form_defaults(st.session_state["train_arch"], data.synthetic).items():
        if not variant_only or key.startswith(f"train_{st.session_state['train_arch']}_"):
            st.session_state[key] = value


arch = st.selectbox("Architecture", names, format_func=lambda n: get_card(n).display_name, key="train_arch",
                    index=names.index("resnet18") if "resnet18" in names else 0,
                    on_change=follow_defaults, kwargs={"variant_only": True})
prepare_panel(choices, arch)  # only where Tiny ImageNet is missing
data = st.selectbox("Dataset", choices, format_func=lambda c: c.label, key="train_data", on_change=follow_defaults,
                    help=tv.dataset_help())
# first visit: the chosen dataset's defaults (label smoothing and EMA here, not value=: the zoo's recipe sets them)
for key, value in {**tv.form_defaults(arch, data.synthetic), "train_ls": 0.1, "train_ema": 0.0}.items():
    st.session_state.setdefault(key, value)
zoo = tv.zoo_recipe_form(arch)  # the settings of the zoo member for this architecture, if there is one
if zoo is not None:
    st.button(f"Fill in the zoo's recipe for {get_card(arch).display_name}", key="train_zoo",
              on_click=lambda: st.session_state.update(zoo[0], train_zoo_applied=arch),
              help="The settings the zoo trains this family with (docs/zoo.md); change any before Start.")
    if st.session_state.get("train_zoo_applied") == arch:
        st.caption(md_escape(zoo[1]))
with st.form("train_form", enter_to_submit=False):  # only Start starts a run (Enter in a field did, then Start again)
    variant = variant_widgets(get_card(arch), "train")
    c = st.columns(4)
    epochs = c[0].number_input("Epochs", 1, 1000, key="train_epochs")
    batch = c[1].number_input("Batch size", 1, 65536, key="train_batch")
    optimizer = c[2].selectbox("Optimizer", ["sgd", "adamw"], key="train_opt")
    lr = c[3].number_input("Learning rate (empty: 0.1 SGD, 0.002 AdamW)", value=None, min_value=0.0,
                           format="%.5f", key="train_lr")
    schedule = c[0].selectbox("Schedule", ["cosine", "onecycle"], key="train_sched")
    warmup = c[1].number_input("Warm-up epochs (empty: 10% of the run, at most 1)", value=None, min_value=0.0,
                               max_value=100.0, key="train_warmup")
    smoothing = c[2].number_input("Label smoothing", 0.0, 0.99, key="train_ls")
    wd = c[3].number_input("Weight decay (empty: 5e-4 SGD, 0.05 AdamW)", value=None, min_value=0.0,
                           format="%.5f", key="train_wd")
    device = c[0].selectbox("Device", ["auto", "cuda", "cpu"], key="train_device")
    seed = c[1].number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    force = c[2].checkbox("Second job on this device", key="train_force", help=tv.FORCE_HELP)
    snaps = c[3].checkbox("Keep every epoch's weights", key="train_snaps",
                          help="epochs/epoch_NNN.safetensors, for Visualize's 'across training' view (disk!)")
    ema = c[0].number_input("Weight average decay (0: off)", 0.0, 0.9999, format="%.4f", key="train_ema",
                            help=tv.EMA_HELP)
    tta = c[1].checkbox("Flip test-time augmentation", key="train_tta", help=tv.TTA_HELP)
    if data.synthetic:
        st.caption(f"**Not Tiny ImageNet.** {tv.DEMO_HELP}")
    st.caption(estimate(arch, tuple(sorted(variant.items())), data, int(batch), device))
    start = st.form_submit_button("Start", type="primary")
if start:
    try:
        cfg = tv.config_from_form(dict(
            arch=arch, variant=variant, data=data.spec, epochs=int(epochs), batch_size=int(batch), optimizer=optimizer,
            lr=lr, schedule=schedule, warmup_epochs=warmup, label_smoothing=smoothing, weight_decay=wd, device=device,
            seed=int(seed), keep_snapshots=snaps, ema_decay=ema, tta_flip=tta))
        st.session_state["train_run"] = jobs.start(cfg, force=force).name
    except (ValueError, RuntimeError, OSError) as e:
        show_error(f"Training did not start: {e}", e)

runs = list_runs()
waiting = await_starting_run(device, runs)  # a run whose folder is not there yet: shown once it is
if not runs:
    if not waiting:
        st.info("No runs yet: choose an architecture and press Start.")
    st.stop()
ids = [r.id for r in runs]
if st.session_state.get("train_run") not in ids:
    st.session_state["train_run"] = ids[0]
labels = {r.id: r.state for r in runs}  # the states the selector shows; the fragment refreshes them on a change
if st.session_state.get("train_labels") != labels:
    # Streamlit's selectbox keeps showing an option's old text when only format_func's text changes;
    # setting its value again makes the browser redraw it with the new state
    st.session_state["train_labels"] = labels
    st.session_state["train_run"] = st.session_state["train_run"]
run_id = st.selectbox("Run", ids, key="train_run", format_func=lambda i: f"{i} ({labels[i]})")


@st.fragment(run_every=2.0 if read_run(checkpoints_dir() / run_id).active else None)
def monitor(run_id: str) -> None:
    info = read_run(checkpoints_dir() / run_id)
    if info.state == "missing":
        st.warning("This run folder no longer exists (deleted?).")
        return
    if info.state != labels.get(run_id) and st.session_state.get("train_refreshed") != (run_id, info.state):
        # queued -> running -> done: refresh the whole page, so the run selector shows the real state (and
        # polling stops once the run has ended); once per state, so a flickering read cannot loop
        st.session_state["train_refreshed"] = (run_id, info.state)
        st.rerun()
    box = {"failed": st.error, "done": st.success, "stopped": st.warning}.get(info.state, st.info)
    box(f"**{info.state}**: {md_escape(info.message) or '...'}")
    for problem in info.problems:
        st.caption(f"warning: {md_escape(problem)}")
    frac, text = tv.progress(info)
    st.progress(frac, text=text)
    b = st.columns(4)
    if info.active and b[0].button("Stop", key="train_stop"):
        act(jobs.stop, info.path)
    if info.state in ("failed", "stopped") and b[1].button("Resume", key="train_resume"):
        act(jobs.resume, info.path)
    if not info.active and b[2].button("Delete", key="train_delete"):
        st.session_state["train_confirm"] = run_id
    if st.session_state.get("train_confirm") == run_id:
        st.warning(f"Delete {md_escape(run_id)} and all its checkpoints?")
        y, n = st.columns(2)
        if y.button("Yes, delete", key="train_yes"):
            st.session_state.pop("train_confirm")
            act(jobs.delete, info.path)
        if n.button("Cancel", key="train_no"):
            st.session_state.pop("train_confirm")
            st.rerun()
    if info.metrics:
        st.plotly_chart(tv.run_curves_figure(info.metrics), key="train_curves")
        last = info.metrics[-1]
        m = st.columns(4)
        m[0].metric("val top-1", f"{100 * last['val_top1']:.1f}%")
        m[1].metric("val top-5", f"{100 * last['val_top5']:.1f}%")
        m[2].metric("images/s", f"{last['images_per_s']:.0f}")
        value, detail, sentence = tv.memory_texts(tv.memory_comparison(info))
        m[3].metric("peak memory", value, help=detail)
        st.caption(sentence)
    st.code(info.log_tail(15) or "(no log yet)", language=None)


monitor(run_id)
