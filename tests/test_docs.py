"""The worked examples in the docstrings and in the README run and print what they say."""

import ast
import doctest
import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import minigrad

MODULES = ["minigrad", "minigrad._autograd", "minigrad._tensor", "minigrad._graph",
           "minigrad.gradcheck", "minigrad.testing", "minigrad.nn._xent", "minigrad.raw_ops",
           "minigrad._kernels", "minigrad._config"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"minigrad": minigrad, "np": np},
                             optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_section(title):
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _blocks(section, language):
    return re.findall(rf"^```{language}\n(.*?)^```$", section, flags=re.M | re.S)


@pytest.mark.skipif(not README.is_file(), reason="README.md is not next to the tests (not a source checkout)")
def test_readme_testing_your_own_op_runs():
    section = _readme_section("Testing your own op")
    code = _blocks(section, "python")
    assert len(code) >= 4
    namespace = {"__name__": "readme"}
    for block in code:  # one namespace, in order, as a reader would paste them
        exec(compile(block, "README.md: Testing your own op", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    assert tests
    for test in tests:
        test()
    # the report shown is the one the code produces (its first lines)
    (shown,) = _blocks(section, "text")
    actual = namespace["report"].splitlines()
    assert shown.splitlines() == actual[:len(shown.splitlines())]


@pytest.mark.skipif(not README.is_file(), reason="README.md is not next to the tests (not a source checkout)")
@pytest.mark.parametrize("name", ["gradcheck", "gradgradcheck", "check_grads",
                                  "testing.assert_gradients_close"])
def test_readme_gives_the_checks_real_signatures(name):
    fn = minigrad
    for part in name.split("."):
        fn = getattr(fn, part)
    readme = " ".join(README.read_text(encoding="utf-8").split())  # signatures wrap lines
    documented = re.findall(rf"`minigrad\.{re.escape(name)}\(([^`]*)\)`", readme)
    assert documented, f"the README does not give minigrad.{name}'s signature"
    params = {p.name: p for p in inspect.signature(fn).parameters.values()}
    order = list(params)
    for doc in documented:
        # split at top-level commas (a default may be a tuple)
        items, depth, item = [], 0, ""
        for ch in doc + ",":
            depth += ch in "([" and 1 or ch in ")]" and -1 or 0
            if ch == "," and depth == 0:
                items.append(item.strip())
                item = ""
            else:
                item += ch
        named = [i for i in items if i not in ("*", "...", "")]
        names = [i.split("=")[0] for i in named]
        # the documented ones, in order, from the start; all of them unless it ends in "..."
        assert names == (order[:len(names)] if "..." in items else order), doc
        for item in named:
            if "=" in item:
                key, default = item.split("=", 1)
                assert ast.literal_eval(default) == params[key].default, (item, doc)
