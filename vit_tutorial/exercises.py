"""Exercises: the checks behind each notebook's exercises, and how an answer is checked.

A notebook poses an exercise with a stub for the reader to fill in and a call `exercises.check("04.1",
answer)`. Until the stub is filled in, the call says so; then it runs the exercise's checks and
says what is wrong, or that the answer passes. The solutions sit in the notebooks, folded away
below each exercise; the test suite runs every solution through the same checks.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable

CHECKS: dict[str, tuple[str, Callable[[Any], None]]] = {}  # id -> (title, check that raises AssertionError)


class NotAnswered(Exception):
    """The reader's stub still says `...` (or raises NotImplementedError)."""


def exercise(ident: str, title: str):
    """Register the check of exercise `ident` ("04.1": notebook 04, exercise 1)."""

    def register(check: Callable[[Any], None]):
        CHECKS[ident] = (title, check)
        return check

    return register


def check(ident: str, answer: Any, strict: bool = False) -> None:
    """Check the reader's `answer` to exercise `ident` and print the outcome.

    `strict=True` (the test suite) raises NotAnswered or the check's error instead of printing.
    """
    if ident not in CHECKS:
        raise ValueError(f"no exercise {ident!r}: the exercises are {', '.join(sorted(CHECKS))}.")
    title, test = CHECKS[ident]
    try:
        test(answer)
    except (NotAnswered, NotImplementedError):
        if strict:
            raise
        print(f"Exercise {ident} ({title}): not answered yet. Fill in the code above and run the cell again.")
        return
    except Exception as err:  # a wrong answer, or one that fails to run
        if strict:
            raise
        where = "" if isinstance(err, AssertionError) else f" ({type(err).__name__} in your code: " \
            f"{traceback.format_exception_only(err)[-1].strip()})"
        print(f"Exercise {ident} ({title}): not yet right{where}. {err if isinstance(err, AssertionError) else ''}".rstrip())
        return
    print(f"Exercise {ident} ({title}): correct.")


def answered(value: Any) -> Any:
    """The value an answer returned, or NotAnswered if it is still the stub's `...` or None."""
    if value is Ellipsis or value is None:
        raise NotAnswered
    return value


from . import exercise_checks  # noqa: E402,F401  (registers the checks of every notebook's exercises)
