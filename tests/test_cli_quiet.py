"""The command line's start-up (issue 15 item 15): no TensorFlow log noise unless the user
asks for it, and argument mistakes reported before TensorFlow is even imported."""

import json
import os
import re
import subprocess
import sys
import time

from keras_fer import _quiet_tf

# What TensorFlow 2.21 printed on `import tensorflow` and the first op on a CPU machine.
_NOISE = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796565073.713005    5548 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796565073.713292    5548 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796565073.755073    5548 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
a line of the program's own
W0000 00:00:1796565087.360342    5739 some_file.cc:12] a warning
E0000 00:00:1796565087.360342    5739 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
Traceback (most recent call last):
"""  # noqa: E501


def test_filter_log_drops_what_the_level_hides():
    assert _quiet_tf.filter_log(_NOISE, 3) == ("a line of the program's own\n"
                                               "Traceback (most recent call last):\n")
    kept = _quiet_tf.filter_log(_NOISE, 2)
    assert "cuInit" in kept and "a warning" not in kept and "oneDNN" not in kept
    assert "a warning" in _quiet_tf.filter_log(_NOISE, 1)
    assert _quiet_tf.filter_log(_NOISE, 0) == _NOISE


def _env(**values):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(values)
    return env


def test_missing_input_is_reported_before_tensorflow_is_imported(tmp_path):
    missing = tmp_path / "nope.png"
    script = ("import sys\nfrom keras_fer.cli import main\ncode = main(sys.argv[1:])\n"
              "print('tensorflow imported:', 'tensorflow' in sys.modules)\nsys.exit(code)\n")
    for argv, message in (
            (["predict", str(missing), "--json"], f"{missing}: file does not exist"),
            (["predict", "--model", str(tmp_path / "m.keras")],
             f"model: file not found: {tmp_path / 'm.keras'}"),
            (["predict", "--model", "MINI-XCEPTION.FER2013"],
             "Did you mean 'mini_xception.fer2013'?"),
            (["video", str(tmp_path / "clip.mp4")], "no such file")):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
                             text=True, timeout=120, env=_env(KERAS_FER_HOME=str(tmp_path)))
        seconds = time.perf_counter() - start
        assert out.returncode == 1, (argv, out.stderr)
        assert out.stdout == "tensorflow imported: False\n", (argv, out.stdout)
        line = out.stderr.splitlines()[-1]  # after "no IMAGE given: ..." when there is none
        assert "Traceback" not in out.stderr and message in line
        assert line.startswith(f"keras-fer {argv[0]}: error: ")
        # Well under a second here (TensorFlow's import alone takes 8 s); the bound is loose
        # for loaded machines, the sys.modules check above is the strict one.
        assert seconds < 20, seconds


def test_cli_prints_no_tensorflow_start_up_noise(tmp_path):
    """The real command on the bundled photo and model (TFLite backend, converted into a
    private cache): stderr holds only the program's own line; a level the user set is kept."""
    env = _env(KERAS_FER_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "keras_fer.cli", "predict", "--json"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["backend"] == "tflite"
    assert out.stderr.splitlines() == [
        line for line in out.stderr.splitlines() if line.startswith("no IMAGE given")], \
        out.stderr
    for noise in ("cuInit", "cudart_stub", "oneDNN", "absl", "XNNPACK", "cpu_feature_guard"):
        assert noise not in out.stderr
    # TF_CPP_MIN_LOG_LEVEL set by the user: TensorFlow's lines come through as they are.
    out = subprocess.run([sys.executable, "-m", "keras_fer.cli", "predict", "--json",
                          "--backend", "keras"], capture_output=True, text=True, timeout=300,
                         env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert out.returncode == 0, out.stderr
    assert re.search(r"^[IWE]\d{4} ", out.stderr, re.M), out.stderr
