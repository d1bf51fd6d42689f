"""The generated and hand-written pages that map the package: docs/models.md is what
docs/make_models_md.py writes from the registry, every seed the code names is in
docs/references.md, and the links of the README and those pages lead somewhere."""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _make_models_md():
    spec = importlib.util.spec_from_file_location(
        "make_models_md", os.path.join(DOCS, "make_models_md.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_md_is_what_the_registry_gives():
    make = _make_models_md()
    params = make.committed_params()
    with open(make.DEFAULT_OUT) as f:
        committed = f.read()
    # Parameter counts are read back (building every model takes a minute); an architecture
    # without one is built and counted, and then differs from the file.
    assert make.render(make.rows(params)) == committed, \
        "docs/models.md is stale: run python docs/make_models_md.py --reuse-params"
    # The counts are real: the cheapest model's is recounted.
    assert make.count_params("mini_xception") == params["mini_xception"]


def test_seed_numbers_in_the_code_are_all_in_references():
    with open(os.path.join(DOCS, "references.md")) as f:
        text = f.read()
    rows = set(re.findall(r"^\| (\d{3}) \|", text, flags=re.MULTILINE))
    assert rows == {"000", "001", "002", "003", "004"}
    named = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "keras_fer")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    named |= set(re.findall(r"\b(?:seeds?|paper|SPEC) (\d{3})\b", f.read()))
    assert named and named <= rows, f"seeds named in the code but not in references.md: " \
                                    f"{sorted(named - rows)}"


def test_relative_links_of_the_maps_lead_to_files():
    pages = [os.path.join(ROOT, "README.md")] + [
        os.path.join(DOCS, n) for n in ("references.md", "models.md")]
    broken = []
    for page in pages:
        with open(page) as f:
            targets = LINK.findall(f.read())
        for target in targets:
            if "://" in target or target.startswith("#"):
                continue
            path = os.path.join(os.path.dirname(page), target.split("#")[0])
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(page, ROOT)}: {target}")
    assert not broken, broken
