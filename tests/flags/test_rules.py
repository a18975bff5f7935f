"""What counts as reducing exposure (DESIGN.md), as a table."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flags.rules import (
    StateValue,
    clean_allowlist,
    in_percentage,
    reduces_exposure,
    unusable_text,
)


def s(mode: str, pct: int = 0, keys: tuple[str, ...] = ()) -> StateValue:
    return StateValue.of(mode, pct, keys)


@pytest.mark.parametrize(
    ("before", "after", "reduces"),
    [
        # To off or shadow from anything.
        (s("full"), s("off"), True),
        (s("percentage", 50, ("a",)), s("shadow"), True),
        (s("allowlist", 0, ("a",)), s("off"), True),
        # Full to anything.
        (s("full"), s("percentage", 99), True),
        (s("full"), s("allowlist", 0, ("a", "b")), True),
        # A smaller (or equal) percentage with an allowlist that is a subset.
        (s("percentage", 50, ("a", "b")), s("percentage", 10, ("a",)), True),
        (s("percentage", 50), s("percentage", 50), True),
        (s("percentage", 10), s("percentage", 20), False),
        (s("percentage", 50, ("a",)), s("percentage", 10, ("a", "b")), False),
        # An allowlist that is a subset.
        (s("allowlist", 0, ("a", "b")), s("allowlist", 0, ("b",)), True),
        (s("allowlist", 0, ("a",)), s("allowlist", 0, ("a", "c")), False),
        (s("allowlist", 0, ("a",)), s("percentage", 0, ("a",)), True),
        (s("allowlist", 0, ("a",)), s("percentage", 5, ("a",)), False),
        (s("percentage", 30, ("a",)), s("allowlist", 0, ("a",)), True),
        # From nothing on, anything that turns someone on increases.
        (s("off"), s("allowlist", 0, ("a",)), False),
        (s("off"), s("percentage", 1), False),
        (s("shadow"), s("full"), False),
        (s("off"), s("allowlist"), True),
        (s("off"), s("percentage", 0), True),
        # Everything else increases: to full is never a reduction unless already full.
        (s("percentage", 100), s("full"), False),
        (s("full"), s("full"), True),
    ],
)
def test_reduces_exposure__table__matches_design(before, after, reduces):
    assert reduces_exposure(before, after) is reduces


@given(
    before_pct=st.integers(0, 100),
    after_pct=st.integers(0, 100),
    keys=st.lists(st.text(min_size=1, max_size=8), max_size=30),
)
def test_reduces_exposure__percentage_change__never_hides_an_increase(before_pct, after_pct, keys):
    """If a change claims to reduce, no key that was off is on afterwards."""
    before, after = s("percentage", before_pct), s("percentage", after_pct)
    if reduces_exposure(before, after):
        for key in keys:
            assert not (
                in_percentage("f", key, after_pct) and not in_percentage("f", key, before_pct)
            )


def test_clean_allowlist__duplicates_and_spaces__distinct_sorted():
    assert clean_allowlist([" b", "a", "b"]) == ["a", "b"]


@pytest.mark.parametrize("bad", ["a,b", [""], [1], ["x" * 300]])
def test_clean_allowlist__bad_input__says_what_to_fix(bad):
    with pytest.raises(ValueError, match="allowlist"):
        clean_allowlist(bad)


def test_bucket__lone_surrogate__a_python_error_not_a_crashed_process():
    """mmh3 given a str with a lone surrogate kills the process: bucket hashes UTF-8 bytes."""
    code = (
        "from flags.rules import bucket\n"
        "try:\n    bucket('k', '\\ud800')\n"
        "except UnicodeEncodeError:\n    print('refused')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert (done.returncode, done.stdout.strip()) == (0, "refused"), done.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [("ok ü 😀", None), ("a\x00b", "NUL"), ("\ud800", "lone surrogate"), ("x\udfffy", "surrogate")],
)
def test_unusable_text__nul_or_lone_surrogate__says_which(text, problem):
    found = unusable_text(text)
    assert (found is None) if problem is None else (problem in found)
