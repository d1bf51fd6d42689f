"""Training throughput (images/second, forward + backward + SGD update) of every model family
at its default input size, next to the same architecture in timm (PyTorch) on this machine.

    python benchmarks/train_throughput.py [--families resnet,vit] [--batch-size 8]
        [--steps 3] [--json out.json] [--timeout 900]

One architecture per family (the smallest registered size: ``FAMILIES`` below), both sides
with random weights, 7 classes, cross-entropy, plain SGD, the family's default input
(224x224x3; 240 for CrossViT, 299 for Xception and InceptionV3, 48x48x1 for mini-Xception).
Each measurement runs in its own subprocess (one framework's thread pools never compete with
the other's), builds the model, runs one warm-up step (tracing / allocation), then times
``--steps`` steps; images/s = batch / median step time. Keras: ``train_on_batch`` of the
model compiled with ``jit_compile=False`` (how ``keras_fer.training`` runs it: a
``tf.function`` train step, no XLA). timm: ``model.train()``, ``zero_grad``, forward, loss,
``backward``, ``step``, with torch using every core and ``OMP_WAIT_POLICY=PASSIVE`` (see
``--omp-active``). "ratio" is Keras / timm (above 1: Keras is faster). Compare within one run:
a shared machine is noisy.
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


def _shape(arch):
    from keras_fer.models import get_architecture

    return tuple(get_architecture(arch).default_input_shape)


def measure_keras(arch, batch_size, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import keras
    from keras_fer.models import create_model

    shape = _shape(arch)
    t0 = time.perf_counter()
    model = create_model(arch, num_classes=7, input_shape=shape)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size,) + shape).astype("float32")
    y = (np.arange(batch_size) % 7).astype("int32")
    model.train_on_batch(x, y)  # warm-up: tracing and allocation
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return {"params": int(model.count_params()), "step_s": statistics.median(times),
            "warmup_s": warmup, "input": list(shape)}


def measure_timm(name, shape, batch_size, steps):
    if importlib.util.find_spec("torchvision") is None:
        sys.path.insert(0, TORCHVISION_STUB)
    import torch

    import timm

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    model = timm.create_model(name, pretrained=False, num_classes=7,
                              img_size=shape[0]) if _takes_img_size(name) else \
        timm.create_model(name, pretrained=False, num_classes=7)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((batch_size, shape[2], shape[0], shape[1]), generator=gen)
    y = torch.arange(batch_size) % 7

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    step()
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    params = sum(p.numel() for p in model.parameters())
    return {"params": int(params), "step_s": statistics.median(times), "warmup_s": warmup}


def _takes_img_size(name):
    # Transformers take the input size as an argument; CNNs adapt to any size by themselves.
    return name.startswith(("vit_", "deit_", "swin_", "convit_", "crossvit_"))


def worker(args):
    if args.worker == "keras":
        result = measure_keras(args.arch, args.batch_size, args.steps)
    else:
        result = measure_timm(args.arch, tuple(args.shape), args.batch_size, args.steps)
    print("RESULT " + json.dumps(result))


def run_sub(argv, timeout, env=None):
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv,
                             capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                             env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:200]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=None,
                        help=f"comma-separated subset of {', '.join(FAMILIES)}")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    parser.add_argument("--no-timm", action="store_true", help="Keras side only")
    parser.add_argument("--omp-active", action="store_true",
                        help="leave torch's OpenMP wait policy at its default (spinning) "
                             "instead of OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", choices=("keras", "timm"), help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1:
        parser.error("--batch-size and --steps must be >= 1")
    if args.worker:
        worker(args)
        return 0
    families = list(FAMILIES)
    if args.families:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            parser.error(f"--families must be among {list(FAMILIES)}, got unknown {unknown}")
    common = ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    timm_env = dict(os.environ)
    if not args.omp_active:
        # PyTorch's OpenMP threads spin while they wait; on a CPU shared with other processes
        # the spinning threads starve the working ones (10x slower steps measured here).
        # Passive waiting is what TensorFlow's own thread pool does, so the sides compare.
        timm_env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = []
    header = (f"{'family':14s} {'keras-fer arch':26s} {'input':>11s} {'params M':>9s} "
              f"{'Keras img/s':>11s} {'timm model':28s} {'params M':>9s} {'timm img/s':>10s} "
              f"{'ratio':>6s}")
    print(f"batch {args.batch_size}, median of {args.steps} steps, {os.cpu_count()} CPUs")
    print(header)
    print("-" * len(header))
    for family in families:
        arch, timm_name = FAMILIES[family]
        k = run_sub(["--worker", "keras", "--arch", arch] + common, args.timeout)
        t = None
        if timm_name and not args.no_timm:
            shape = k.get("input") or list(_shape_in_subprocess(arch))
            t = run_sub(["--worker", "timm", "--arch", timm_name, "--shape", *map(str, shape)]
                        + common, args.timeout, env=timm_env)
        k_ips = args.batch_size / k["step_s"] if "step_s" in k else None
        t_ips = args.batch_size / t["step_s"] if t and "step_s" in t else None
        row = {"family": family, "arch": arch, "timm": timm_name, "keras": k, "timm_result": t,
               "keras_img_s": k_ips, "timm_img_s": t_ips,
               "ratio": k_ips / t_ips if k_ips and t_ips else None}
        results.append(row)
        shape = "x".join(map(str, k.get("input", []))) or "?"
        print(f"{family:14s} {arch:26s} {shape:>11s} "
              f"{_num(k.get('params'), 1e-6, '.2f'):>9s} {_num(k_ips, 1, '.2f'):>11s} "
              f"{timm_name or '-':28s} {_num((t or {}).get('params'), 1e-6, '.2f'):>9s} "
              f"{_num(t_ips, 1, '.2f'):>10s} {_num(row['ratio'], 1, '.2f'):>6s}", flush=True)
        for side, res in (("keras", k), ("timm", t)):
            if res and "error" in res:
                print(f"    {side}: {res['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch_size": args.batch_size, "steps": args.steps,
                       "cpus": os.cpu_count(), "results": results}, f, indent=1)
    return 0


def _shape_in_subprocess(arch):
    out = subprocess.run([sys.executable, "-c",
                          "from keras_fer.models import get_architecture as g; "
                          f"print(*g({arch!r}).default_input_shape)"],
                         capture_output=True, text=True, cwd=ROOT)
    return [int(v) for v in out.stdout.split()[-3:]]


def _num(value, scale, fmt):
    return "n/a" if value is None else format(value * scale, fmt)


if __name__ == "__main__":
    sys.exit(main())
