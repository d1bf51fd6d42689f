"""Steady-state training throughput (images/second) on this machine: every model family at its
default input, the zoo's trainable 48x48x1 configurations, and the speed levers.

    python benchmarks/train_throughput.py                       # families + configs, b64/b128
    python benchmarks/train_throughput.py --families none --configs all \\
        --batch-sizes 64,128 --repeats 3 --steps 6              # only the 48x48x1 configs
    python benchmarks/train_throughput.py --families resnet,vit --configs none --batch-sizes 64
    python benchmarks/train_throughput.py --levers              # ratios of each lever
    python benchmarks/train_throughput.py --levers --lever-configs r18_w0.5 --repeats 2

What one number is. Each measurement runs in its own subprocess (fresh thread pools, no
state carried over, one framework per process), which builds the model, compiles it the way
``keras_fer.training.train`` does (``TrainConfig`` defaults: Adam 1e-3, cross-entropy on
logits, one-hot labels, the accuracy metric), runs ``--warmup`` steps (tracing, oneDNN
primitive creation, allocator growth), then times ``--steps`` steps one by one. Its result is
batch / median step time. The step is the engine's own: ``Trainer._train_fn`` of
``keras_fer.training.loop`` (``model.train_step`` under ``strategy.run`` in a
``tf.function``), fed a fixed batch of random pixels in [0, 255] (the input pipeline is
measured apart, in ``--levers``). Measurements are interleaved: repeat 1 runs every row once,
then repeat 2 runs them all again (in rotated order), and so on; the table shows the median
over ``--repeats`` and the spread (min-max). A lever's ratio is the median over repeats of
(lever / fp32 default) measured next to each other in the same repeat, which cancels most of
the drift of a shared, loaded machine.

Families (``FAMILIES``): the smallest registered architecture of each, at its default input
(224x224x3; 240 for CrossViT, 299 for Xception and InceptionV3, 48x48x1 for mini-Xception),
at every ``--batch-sizes``. The timm column (PyTorch, same architecture, random weights, 7
classes, ``model.train()``, ``zero_grad``, forward, cross-entropy, ``backward``, Adam
``step``, every core, ``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-active``) is measured at
``--timm-batch`` (64) in the same repeats; "ratio" is Keras / timm at that batch (above 1:
Keras is faster).

Configurations (``CONFIGS``): what the zoo trains at 48x48x1: mini-Xception width 1 and 2 with
the dense head (the zoo recipe's options), ResNet18 at width 0.25 and 0.5 with the ImageNet
stem (7x7 stride 2 + max-pool) and with the stride-1 3x3 stem (``small_input=True``, "s1").

Levers (``--levers``, on ``--lever-configs``, default ResNet18 w0.5 and mini-Xception w2 at
``--lever-batch`` 128; plus the oneDNN-workaround row on mini-Xception w1 at batch 64), each
against the fp32 default of the same configuration in the same repeat:

* ``mixed_bfloat16`` (Keras global policy set before the model is built, as ``TrainConfig(
  mixed_precision=...)`` does);
* threads: ``tf.config.threading`` intra-op / inter-op pool sizes of 1 or 2 against the
  default (0: TensorFlow sizes both pools from the cores it sees). TensorFlow's oneDNN build
  runs its kernels on TF's own Eigen pool, not OpenMP, so ``OMP_NUM_THREADS`` changes nothing
  and ``TF_NUM_INTEROP_THREADS`` is the same knob as the inter-op setting;
* oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0`` in the subprocess environment);
* ``jit_compile=True`` (XLA): Keras' own ``train_on_batch`` of the model compiled with
  ``jit_compile=True``, against the engine's step (no XLA; Keras' "auto" also means no XLA on
  a CPU-only machine). First lever configuration only (``--all-levers``: all), because XLA
  compiles for minutes here;
* oneDNN workaround (``KERAS_FER_ONEDNN_WORKAROUND=0``: stock strided 1x1 convolutions) on
  mini-Xception width 1, the model it changes, with a fixed batch (equal-sized batches do not
  trigger the crash; a crash would show as an error row);
* tf.data: the engine's pipeline (``keras_fer.datasets.pipeline.make_dataset``, inline uint8
  48x48 images as FER2013 gives them, one-hot labels) with ``augment="basic"`` or None, and
  with the ``.cache()`` (replayed from memory after the first epoch) or without it. Measured
  alone (images/s of iterating the batches, after one warm-up epoch; "fresh per epoch" builds a
  new pipeline every epoch, as ``train()`` does so that every epoch is deterministic, which
  means its cache is never replayed) and feeding the training step (images/s of training,
  first lever configuration only unless ``--all-levers``).

Numbers from a shared or loaded machine are noisy: compare within one run, use the ratios.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHVISION_STUB = os.path.join(ROOT, "tests", "reference", "torchvision_stub")

# family -> (keras_fer arch, timm model or None)
FAMILIES = {
    "mini_xception": ("mini_xception", None),
    "resnet": ("resnet18", "resnet18"),
    "mobilenet_v2": ("mobilenetv2", "mobilenetv2_100"),
    "vit": ("vit_tiny_patch16", "vit_tiny_patch16_224"),
    "deit": ("deit_tiny_patch16", "deit_tiny_patch16_224"),
    "swin": ("swin_tiny_patch4_window7", "swin_tiny_patch4_window7_224"),
    "convit": ("convit_tiny", "convit_tiny"),
    "crossvit": ("crossvit_tiny", "crossvit_tiny_240"),
    "hybrid_vit": ("vit_small_r26_s32", "vit_small_r26_s32_224"),
    "vgg": ("vgg16", "vgg16"),
    "resnet_d": ("resnet50d", "resnet50d"),
    "efficientnet": ("efficientnet_b0", "efficientnet_b0"),
    "xception": ("xception", "legacy_xception"),
    "inception": ("inception_v3", "inception_v3"),
}

FACE = (48, 48, 1)
_MX = {"head": "dense", "l2_regularization": 0, "dropout": 0.3}  # the zoo recipe's options
# name -> (arch, options), all at 48x48x1
CONFIGS = {
    "mx_w1": ("mini_xception", dict(_MX, width=1)),
    "mx_w2": ("mini_xception", dict(_MX, width=2)),
    "r18_w0.25": ("resnet18", {"width_multiplier": 0.25}),
    "r18_w0.25_s1": ("resnet18", {"width_multiplier": 0.25, "small_input": True}),
    "r18_w0.5": ("resnet18", {"width_multiplier": 0.5}),
    "r18_w0.5_s1": ("resnet18", {"width_multiplier": 0.5, "small_input": True}),
}
DEFAULT_LEVER_CONFIGS = ("r18_w0.5", "mx_w2")
WORKAROUND_CONFIG, WORKAROUND_BATCH = "mx_w1", 64


# ---- the worker side (one measurement per process) -------------------------------------------

def _synthetic_faces(n, seed=0):
    """A FERDataset of ``n`` random inline uint8 48x48 images (what the FER2013 reader gives)."""
    import numpy as np

    from keras_fer.datasets.records import FERDataset, Record
    from keras_fer.labels import EMOTIONS

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    records = [Record(source=f"synthetic:{i}", label=int(i % 7), image=images[i])
               for i in range(n)]
    return FERDataset("synthetic_faces", records, EMOTIONS[:7])


def _pipeline(spec, batch, n, repeat=True):
    from keras_fer.datasets.pipeline import make_dataset

    # The engine's arguments (keras_fer.training.engine.train), drop_remainder so that the
    # timed steps all see one shape.
    return make_dataset(_synthetic_faces(n), image_size=FACE[:2], channels=FACE[2],
                        batch_size=batch, shuffle=True, seed=0, augment=spec.get("augment"),
                        label_mode="onehot", normalization={"scale": 1.0},
                        cache=spec.get("cache", True), repeat=repeat, drop_remainder=True,
                        validate=False)


def _timed(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def measure_keras(spec, warmup, steps):
    import numpy as np
    import tensorflow as tf

    if spec.get("intra") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra"])
    if spec.get("inter") is not None:
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter"])
    import keras

    from keras_fer.models import create_model, get_architecture
    from keras_fer.training import TrainConfig
    from keras_fer.training.builders import build_loss, build_optimizer
    from keras_fer.training.loop import Trainer

    if spec.get("precision"):
        keras.mixed_precision.set_global_policy(spec["precision"])
    keras.utils.set_random_seed(0)
    arch = spec["arch"]
    shape = tuple(spec.get("input") or get_architecture(arch).default_input_shape)
    batch = spec["batch"]
    t0 = time.perf_counter()
    model = create_model(arch, num_classes=7, input_shape=shape, **spec.get("options", {}))
    config = TrainConfig(arch=arch)
    step_kind = spec.get("step", "engine")
    compile_kw = {"jit_compile": step_kind == "keras_jit"} if step_kind != "engine" else {}
    model.compile(optimizer=build_optimizer(config, None), loss=build_loss(config),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], **compile_kw)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch,) + shape).astype("float32")
    y = np.eye(7, dtype="float32")[np.arange(batch) % 7]

    if step_kind == "engine":
        train_fn = Trainer(model, verbose=0)._train_fn
        if spec.get("feed") == "pipeline":
            # One epoch = the warm-up steps, so the timed steps replay the cache (when on).
            it = iter(_pipeline(spec, batch, batch * max(1, warmup)))

            def step():
                logs, _ = train_fn(next(it))
                float(logs["loss"])
        else:
            batch_t = (tf.constant(x), tf.constant(y))

            def step():
                logs, _ = train_fn(batch_t)
                float(logs["loss"])
    else:
        def step():
            model.train_on_batch(x, y)

    step()  # tracing and allocation
    first = time.perf_counter() - t0
    times = _timed(step, warmup - 1, steps)
    return {"params": int(model.count_params()), "step_s": statistics.median(times),
            "times": times, "first_step_s": first, "input": list(shape)}


def measure_pipeline(spec, warmup, steps):
    """Images/s of the input pipeline alone (``steps`` = epochs timed, after one epoch)."""
    batch, n = spec["batch"], spec.get("images", 4096)
    per_epoch = n // batch
    if spec.get("fresh"):
        # What train() does: a new make_dataset every epoch (its cache is never replayed).
        def epoch(seed=[0]):
            seed[0] += 1
            for _ in _pipeline(dict(spec, cache=True), batch, n, repeat=False):
                pass
    else:
        it = iter(_pipeline(spec, batch, n))

        def epoch():
            for _ in range(per_epoch):
                next(it)
    epoch()  # warm-up: tracing, first pass (fills the cache)
    times = _timed(epoch, 0, steps)
    return {"step_s": statistics.median(times), "times": times,
            "images_per_step": per_epoch * batch}


def measure_timm(spec, warmup, steps):
    if importlib.util.find_spec("torchvision") is None:
        sys.path.insert(0, TORCHVISION_STUB)
    import torch

    import timm

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    name, shape, batch = spec["timm"], spec["input"], spec["batch"]
    t0 = time.perf_counter()
    kwargs = {"img_size": shape[0]} if _takes_img_size(name) else {}
    model = timm.create_model(name, pretrained=False, num_classes=7, **kwargs)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((batch, shape[2], shape[0], shape[1]), generator=gen)
    y = torch.arange(batch) % 7

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    step()
    first = time.perf_counter() - t0
    times = _timed(step, warmup - 1, steps)
    params = sum(p.numel() for p in model.parameters())
    return {"params": int(params), "step_s": statistics.median(times), "times": times,
            "first_step_s": first}


def _takes_img_size(name):
    # Transformers take the input size as an argument; CNNs adapt to any size by themselves.
    return name.startswith(("vit_", "deit_", "swin_", "convit_", "crossvit_"))


def worker(spec, warmup, steps):
    kind = spec.get("kind", "keras")
    measure = {"keras": measure_keras, "pipeline": measure_pipeline, "timm": measure_timm}[kind]
    print("RESULT " + json.dumps(measure(spec, warmup, steps)), flush=True)


# ---- the driver side ------------------------------------------------------------------------

def run_sub(spec, warmup, steps, timeout):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(spec.get("env", {}))
    argv = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec),
            "--warmup", str(warmup), "--steps", str(steps)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                             env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    if out.returncode < 0:
        return {"error": f"killed by signal {-out.returncode}"}
    tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {out.returncode}: {tail[0][:200]}"}


def images_per_s(spec, result):
    if "step_s" not in result:
        return None
    return result.get("images_per_step", spec["batch"]) / result["step_s"]


def run_interleaved(rows, args, log):
    """rows: list of (key, spec). Runs every row once per repeat, in rotated order; returns
    {key: {"runs": [img/s or None per repeat], "results": [...]}}."""
    out = {key: {"spec": spec, "runs": [None] * args.repeats, "results": [None] * args.repeats}
           for key, spec in rows}
    n = len(rows)
    for r in range(args.repeats):
        shift = (r * max(1, n // args.repeats)) % n if n else 0
        for key, spec in rows[shift:] + rows[:shift]:
            t = time.perf_counter()
            res = run_sub(spec, args.warmup, args.steps, args.timeout)
            ips = images_per_s(spec, res)
            out[key]["runs"][r] = ips
            out[key]["results"][r] = res
            log(f"  [repeat {r + 1}/{args.repeats}] {key}: "
                f"{'%.1f img/s' % ips if ips else res.get('error')} "
                f"({time.perf_counter() - t:.0f} s)")
    return out


def summary(entry):
    runs = [v for v in entry["runs"] if v]
    if not runs:
        return None, "", next((r.get("error") for r in entry["results"] if r), "not run")
    spread = f"{min(runs):.1f}-{max(runs):.1f}" if len(runs) > 1 else ""
    return statistics.median(runs), spread, None


def ratio(entry, base):
    pairs = [a / b for a, b in zip(entry["runs"], base["runs"]) if a and b]
    return statistics.median(pairs) if pairs else None


def _fmt(value, fmt=".1f"):
    return "n/a" if value is None else format(value, fmt)


def _params(entry):
    p = next((r.get("params") for r in entry["results"] if r and r.get("params")), None)
    return _fmt(p / 1e6 if p else None, ".2f")


def _print_table(header, rows, out):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out(line(header))
    out("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        out(line(row))


def _select(value, table, what, parser):
    if value in (None, "all"):
        return list(table)
    if value == "none":
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in names if v not in table]
    if unknown:
        parser.error(f"{what} must be among {list(table)} (or all / none), got {unknown}")
    return names


def throughput(args, families, configs, batches, out, log):
    rows = []
    timm_env = {} if args.omp_active else {"OMP_WAIT_POLICY": "PASSIVE"}
    for fam in families:
        arch, timm_name = FAMILIES[fam]
        for b in batches:
            rows.append((("family", fam, b), {"arch": arch, "batch": b}))
        if timm_name and not args.no_timm:
            rows.append((("timm", fam, args.timm_batch),
                         {"kind": "timm", "timm": timm_name, "batch": args.timm_batch,
                          "input": list(_default_shape(arch)), "env": timm_env}))
    for name in configs:
        arch, options = CONFIGS[name]
        for b in batches:
            rows.append((("config", name, b), {"arch": arch, "options": options,
                                               "input": list(FACE), "batch": b}))
    res = run_interleaved(rows, args, log)
    tables = {}
    if families:
        header = (["family", "keras-fer arch", "input", "params M"]
                  + [f"Keras b{b} img/s" for b in batches]
                  + ["timm model", f"timm b{args.timm_batch} img/s", f"ratio b{args.timm_batch}"])
        body = []
        for fam in families:
            arch, timm_name = FAMILIES[fam]
            cells, errors = [], []
            first = res[("family", fam, batches[0])]
            shape = next((r["input"] for r in first["results"] if r and "input" in r), None)
            for b in batches:
                med, spread, err = summary(res[("family", fam, b)])
                cells.append(f"{_fmt(med)}" + (f" ({spread})" if spread else ""))
                if err:
                    errors.append(f"{fam} b{b}: {err}")
            tkey = ("timm", fam, args.timm_batch)
            tmed, tspread, tratio = None, "", None
            if tkey in res:
                tmed, tspread, terr = summary(res[tkey])
                if terr:
                    errors.append(f"{fam} timm: {terr}")
                if ("family", fam, args.timm_batch) in res:
                    tratio = ratio(res[("family", fam, args.timm_batch)], res[tkey])
            body.append([fam, arch, "x".join(map(str, shape)) if shape else "?",
                         _params(first)] + cells
                        + [timm_name or "-",
                           _fmt(tmed) + (f" ({tspread})" if tmed and tspread else "")
                           if tkey in res else "-", _fmt(tratio, ".2f")])
            for e in errors:
                log(f"    error: {e}")
        out("")
        out(f"Families at their default input: training images/s, median of {args.repeats} "
            f"interleaved repeats (min-max), {args.steps} timed steps after {args.warmup} "
            f"warm-up; ratio = Keras / timm at batch {args.timm_batch}")
        _print_table(header, body, out)
        tables["families"] = {"header": header, "rows": body}
    if configs:
        header = ["config", "arch options (48x48x1)", "params M"] + \
                 [f"b{b} img/s" for b in batches]
        body = []
        for name in configs:
            arch, options = CONFIGS[name]
            cells = []
            for b in batches:
                med, spread, err = summary(res[("config", name, b)])
                cells.append(f"{_fmt(med)}" + (f" ({spread})" if spread else ""))
                if err:
                    log(f"    error: {name} b{b}: {err}")
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            body.append([name, f"{arch} {opts}", _params(res[("config", name, batches[0])])]
                        + cells)
        out("")
        out(f"Zoo configurations at 48x48x1: training images/s, median of {args.repeats} "
            f"interleaved repeats (min-max), {args.steps} timed steps after {args.warmup} "
            f"warm-up")
        _print_table(header, body, out)
        tables["configs"] = {"header": header, "rows": body}
    return res, tables


LEVERS = [
    # (label, spec changes) measured on each lever configuration
    ("fp32 defaults (engine step)", {}),
    ("mixed_bfloat16", {"precision": "mixed_bfloat16"}),
    ("threads intra 1 / inter 1", {"intra": 1, "inter": 1}),
    ("threads intra 2 / inter 1", {"intra": 2, "inter": 1}),
    ("threads intra 1 / inter 2", {"intra": 1, "inter": 2}),
    ("oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}}),
    ("Keras train_on_batch, jit_compile=True (XLA)", {"step": "keras_jit"}),
    ("fed by make_dataset, augment='basic', cached",
     {"feed": "pipeline", "augment": "basic"}),
    ("fed by make_dataset, augment='basic', no cache",
     {"feed": "pipeline", "augment": "basic", "cache": False}),
]

PIPELINE_VARIANTS = [
    ("augment=None, cached (epochs 2+)", {"augment": None}),
    ("augment=None, no cache", {"augment": None, "cache": False}),
    ("augment=None, fresh pipeline per epoch (train())", {"augment": None, "fresh": True}),
    ("augment='basic', cached (epochs 2+)", {"augment": "basic"}),
    ("augment='basic', no cache", {"augment": "basic", "cache": False}),
    ("augment='basic', fresh pipeline per epoch (train())", {"augment": "basic", "fresh": True}),
]


def levers(args, lever_configs, out, log):
    rows = []
    cpus = os.cpu_count() or 1
    lever_list = list(LEVERS)
    if cpus != 2:
        # 1 and 2 threads are this 2-core machine's choices; elsewhere also try every core.
        lever_list.append((f"threads intra {cpus} / inter 1", {"intra": cpus, "inter": 1}))
    groups = [(name, name, args.lever_batch) for name in lever_configs]
    for i, (group, name, batch) in enumerate(groups):
        arch, options = CONFIGS[name]
        base = {"arch": arch, "options": options, "input": list(FACE), "batch": batch}
        for label, change in lever_list:
            if i and (change.get("feed") or change.get("step")) and not args.all_levers:
                continue  # pipeline and jit_compile levers: on the first configuration only
            rows.append(((group, label), dict(base, **change)))
    if not args.no_workaround_lever:
        group = f"{WORKAROUND_CONFIG} b{WORKAROUND_BATCH}"
        groups.append((group, WORKAROUND_CONFIG, WORKAROUND_BATCH))
        arch, options = CONFIGS[WORKAROUND_CONFIG]
        base = {"arch": arch, "options": options, "input": list(FACE), "batch": WORKAROUND_BATCH}
        rows.append(((group, "fp32 defaults (engine step)"), base))
        rows.append(((group, "oneDNN workaround off (KERAS_FER_ONEDNN_WORKAROUND=0)"),
                     dict(base, env={"KERAS_FER_ONEDNN_WORKAROUND": "0"})))
    for label, change in PIPELINE_VARIANTS:
        rows.append((("pipeline", label), dict({"kind": "pipeline", "batch": args.lever_batch,
                                                "images": args.pipeline_images}, **change)))
    res = run_interleaved(rows, args, log)
    tables = {}
    for group, name, batch in groups:
        base = res[(group, "fp32 defaults (engine step)")]
        header = ["lever", "img/s (min-max)", "ratio vs fp32 default"]
        body = []
        for (cfg, label), entry in res.items():
            if cfg != group:
                continue
            med, spread, err = summary(entry)
            r = ratio(entry, base)
            body.append([label, f"{_fmt(med)}" + (f" ({spread})" if spread else "")
                         if not err else f"error: {err}", _fmt(r, ".2f")])
        arch, options = CONFIGS[name]
        out("")
        out(f"Levers on {name} ({arch}, {', '.join(f'{k}={v}' for k, v in options.items())}, "
            f"48x48x1) at batch {batch}: median of {args.repeats} interleaved repeats; "
            f"ratio = median over repeats of lever / fp32 default of the same repeat")
        _print_table(header, body, out)
        tables[group] = {"header": header, "rows": body}
    header = ["input pipeline alone (make_dataset)", "img/s (min-max)",
              "ratio vs augment=None cached"]
    base = res[("pipeline", PIPELINE_VARIANTS[0][0])]
    body = []
    for label, _ in PIPELINE_VARIANTS:
        entry = res[("pipeline", label)]
        med, spread, err = summary(entry)
        body.append([label, f"{_fmt(med, '.0f')}" + (f" ({spread})" if spread else "")
                     if not err else f"error: {err}", _fmt(ratio(entry, base), ".2f")])
    out("")
    out(f"Input pipeline alone: {args.pipeline_images} inline 48x48 uint8 images, batch "
        f"{args.lever_batch}, one-hot labels, images/s over one epoch after a warm-up epoch, "
        f"median of {args.steps} epochs per process and of {args.repeats} repeats")
    _print_table(header, body, out)
    tables["pipeline"] = {"header": header, "rows": body}
    return res, tables


def _default_shape(arch):
    # The registry without importing TensorFlow in the driver: a subprocess answers.
    out = subprocess.run([sys.executable, "-c",
                          "from keras_fer.models import get_architecture as g; "
                          f"print(*g({arch!r}).default_input_shape)"],
                         capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return [int(v) for v in out.stdout.split()[-3:]]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=None,
                        help=f"comma-separated subset of {', '.join(FAMILIES)}, all or none "
                             "(default: all; none with --levers)")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated subset of {', '.join(CONFIGS)}, all or none "
                             "(default: all; none with --levers)")
    parser.add_argument("--batch-sizes", default="64,128")
    parser.add_argument("--timm-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    parser.add_argument("--steps", type=int, default=8,
                        help="timed steps per measurement (median); epochs for the pipeline")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first (the first traces the step)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per measurement")
    parser.add_argument("--no-timm", action="store_true", help="Keras side only")
    parser.add_argument("--omp-active", action="store_true",
                        help="leave torch's OpenMP wait policy at its default (spinning) "
                             "instead of OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--levers", action="store_true", help="measure the speed levers")
    parser.add_argument("--lever-configs", default=",".join(DEFAULT_LEVER_CONFIGS),
                        help=f"configurations for --levers, among {', '.join(CONFIGS)}")
    parser.add_argument("--lever-batch", type=int, default=128)
    parser.add_argument("--no-workaround-lever", action="store_true",
                        help="skip the oneDNN-workaround row (mini-Xception w1, batch 64)")
    parser.add_argument("--all-levers", action="store_true",
                        help="the jit_compile and fed-by-make_dataset levers on every "
                             "--lever-configs (default: on the first only; XLA compiles slowly)")
    parser.add_argument("--pipeline-images", type=int, default=4096)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be >= 1")
    if args.worker:
        worker(json.loads(args.worker), args.warmup, args.steps)
        return 0
    try:
        batches = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if not batches or min(batches) < 1:
        parser.error("--batch-sizes needs at least one batch size >= 1")
    default_sel = "none" if args.levers else "all"
    families = _select(args.families or default_sel, FAMILIES, "--families", parser)
    configs = _select(args.configs or default_sel, CONFIGS, "--configs", parser)
    lever_configs = _select(args.lever_configs, CONFIGS, "--lever-configs", parser) \
        if args.levers else []
    lines = []

    def out(text):
        lines.append(text)
        print(text, flush=True)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out(f"{os.cpu_count()} CPUs, load average {load:.1f} at start; {args.repeats} repeats, "
        f"{args.warmup} warm-up + {args.steps} timed steps per measurement")
    t0 = time.perf_counter()
    report = {"cpus": os.cpu_count(), "load_at_start": load, "args": vars(args)}
    if families or configs:
        res, tables = throughput(args, families, configs, batches, out, log)
        report["throughput"] = {"tables": tables,
                                "raw": [{"key": list(k), **v} for k, v in res.items()]}
    if lever_configs:
        res, tables = levers(args, lever_configs, out, log)
        report["levers"] = {"tables": tables,
                            "raw": [{"key": list(k), **v} for k, v in res.items()]}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out("")
    out(f"{time.perf_counter() - t0:.0f} s in all; load average {load:.1f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
