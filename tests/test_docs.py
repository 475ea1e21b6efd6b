"""The worked examples in the docstrings run and print what they say."""

import doctest
import importlib

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
