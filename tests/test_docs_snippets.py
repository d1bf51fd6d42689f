"""Every ```python snippet of README.md and docs/*.md runs, unless the line before it says why
not (``<!-- no-test: reason -->``: placeholders, real data, a server). Paths of the real
datasets are replaced by synthetic copies written in the same formats."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _snippets():
    out = []
    for path in ["README.md"] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        path = os.path.join(ROOT, path)
        text = open(path).read()
        for match in _BLOCK.finditer(text):
            before = text[:match.start()].rstrip("\n").splitlines()
            line = text[:match.start()].count("\n") + 1
            skip = before[-1].strip() if before and before[-1].strip().startswith(
                "<!-- no-test") else None
            out.append(pytest.param(match.group(1), skip,
                                    id=f"{os.path.relpath(path, ROOT)}:{line}"))
    return out


def test_every_snippet_is_run_or_says_why_not():
    params = _snippets()
    assert len(params) >= 10
    for p in params:
        code, skip = p.values
        assert skip is None or re.fullmatch(r"<!-- no-test: .+ -->", skip), skip


@pytest.mark.parametrize("code, skip", _snippets())
def test_doc_snippet_runs(code, skip, tmp_path, monkeypatch):
    if skip:
        pytest.skip(skip)
    from keras_fer.datasets import synthetic

    fer = synthetic.write_fer2013(str(tmp_path), per_class_train=2, per_class_test=1)
    code = code.replace("/data/fer2013.csv.gz", os.path.join(fer, "fer2013.csv.gz"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})
