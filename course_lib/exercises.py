"""Helpers for the lessons' exercise checks (every lesson).

An exercise often asks for something the library already has ("write the border test by
hand"), and a check that only compares the answer with the library's function passes when the
answer *is* a call of that function. :func:`forbidden` switches such functions off while the
check runs the student's code: a call raises :class:`ForbiddenCall`, whose message names the
function and says what to do instead. The check then compares with the library outside the
``with`` block.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["ForbiddenCall", "forbidden"]


class ForbiddenCall(AssertionError):
    """A check's answer called a function the exercise asks you to write yourself."""


@contextlib.contextmanager
def forbidden(*functions: Callable, why: str = "") -> Iterator[None]:
    """Within the block, calling any of ``functions`` raises :class:`ForbiddenCall`.

    Each function is replaced under its name in the module that defines it (its
    ``__module__``), and in ``torch`` and ``torch.nn.functional`` when it is found there under
    the same name (``torch.max_pool2d`` and ``F.max_pool2d`` are two doors to one operation).
    ``why`` is added to the message (e.g. "use a reshape and a maximum"). Everything is put
    back when the block ends, also when it raises.
    """
    replaced: list[tuple[object, str, object]] = []
    for function in functions:
        name = getattr(function, "__name__", None)
        module = sys.modules.get(getattr(function, "__module__", None) or "")
        if name is None or module is None or getattr(module, name, None) is not function:
            raise ValueError(
                f"forbidden() takes functions defined at the top of a module, got {function!r}."
            )
        homes = [module, *(sys.modules.get(m) for m in ("torch", "torch.nn.functional"))]
        message = f"this exercise asks you to write it yourself, without {module.__name__}.{name}"
        message += f": {why}" if why else "."

        def refuse(*args: object, _message: str = message, **kwargs: object) -> None:
            raise ForbiddenCall(_message)

        for home in homes:
            if home is not None and getattr(home, name, None) is function:
                replaced.append((home, name, function))
                setattr(home, name, refuse)
    try:
        yield
    finally:
        for home, name, function in reversed(replaced):
            setattr(home, name, function)
