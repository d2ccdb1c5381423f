"""What a method's result depends on, as one hash: the key of the evaluation cache (lesson 02).

Re-running a notebook should not re-score a method whose result cannot have changed, and must
re-score one whose result can have changed. A function's source is not enough: the same code
gives other results with other ``functools.partial`` arguments, another value in a closure,
another global it reads, or other network weights. :func:`fingerprint` walks all of these:

* a function: its source (or byte code), default arguments, closure cells and the globals its
  code names, each fingerprinted in turn;
* a ``functools.partial``: the function, its arguments and keywords;
* a bound method: the function and the object it is bound to;
* an ``nn.Module``: its class, its weights and buffers (``state_dict``);
* tensors, arrays, numbers, strings and containers of them: their values;
* anything of ``course_lib``: its name and a hash of the whole library's source, so that a
  change of the library re-scores everything.

An object whose behaviour cannot be read this way (an arbitrary instance without a
``state_dict``) makes :func:`fingerprint` raise :class:`NotFingerprintable`; the evaluation
then scores without the cache and says why. The walk also collects every ``nn.Module`` it
meets, so that the evaluation can score them in eval mode.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

LIBRARY_ROOT = Path(__file__).resolve().parent
MAX_DEPTH = 8  # functions calling functions calling ...; deeper than this is refused


class NotFingerprintable(TypeError):
    """Raised for a method whose result depends on something that cannot be hashed."""


@functools.lru_cache(maxsize=1)
def library_hash() -> str:
    """sha256 over the source of every ``course_lib`` module (its 'version' for the cache)."""
    digest = hashlib.sha256()
    for path in sorted(LIBRARY_ROOT.rglob("*.py")):
        digest.update(path.relative_to(LIBRARY_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class _Walk:
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    modules: list[nn.Module] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def add(self, text: str | bytes) -> None:
        self.digest.update(text if isinstance(text, bytes) else text.encode())
        self.digest.update(b"\x00")


def fingerprint(method: object) -> tuple[str, list[nn.Module]]:
    """``(hex digest, modules)`` of everything ``method``'s result depends on.

    Raises :class:`NotFingerprintable` naming the part that cannot be hashed.
    """
    walk = _Walk()
    _visit(method, walk, depth=0, where="the method")
    return walk.digest.hexdigest(), walk.modules


def modules_of(method: object) -> list[nn.Module]:
    """Every ``nn.Module`` the method reaches (for eval mode); if the method cannot be hashed,
    the one it is or is bound to."""
    try:
        return fingerprint(method)[1]
    except NotFingerprintable:
        target = getattr(method, "__self__", method)
        return [target] if isinstance(target, nn.Module) else []


def _from_library(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "course_lib" or module.startswith("course_lib.")


def _visit(value: object, walk: _Walk, depth: int, where: str) -> None:
    if depth > MAX_DEPTH:
        raise NotFingerprintable(f"{where} nests functions more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        walk.add(f"{type(value).__name__}:{value!r}")
        return
    if id(value) in walk.seen:  # recursion or a shared object: its content is already in
        walk.add("seen")
        return
    walk.seen.add(id(value))
    if isinstance(value, torch.Tensor):
        walk.add(f"tensor:{value.dtype}:{tuple(value.shape)}")
        walk.add(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise NotFingerprintable(f"{where} is a numpy array of Python objects")
        walk.add(f"array:{value.dtype}:{value.shape}")
        walk.add(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        walk.add(f"{type(value).__name__}:{len(items)}")
        for index, item in enumerate(items):
            _visit(item, walk, depth, f"{where}[{index}]")
    elif isinstance(value, dict):
        walk.add(f"dict:{len(value)}")
        for key in sorted(value, key=repr):
            _visit(key, walk, depth, f"a key of {where}")
            _visit(value[key], walk, depth, f"{where}[{key!r}]")
    elif isinstance(value, nn.Module):
        _visit_module(value, walk, where)
    elif isinstance(value, functools.partial):
        walk.add("partial")
        _visit(value.func, walk, depth + 1, f"{where}.func")
        _visit(value.args, walk, depth, f"{where}.args")
        _visit(value.keywords, walk, depth, f"{where}.keywords")
    elif isinstance(value, types.MethodType):
        walk.add("method")
        _visit(value.__func__, walk, depth + 1, f"{where}.__func__")
        _visit(value.__self__, walk, depth + 1, f"the object of {where}")
    elif isinstance(value, types.FunctionType):
        _visit_function(value, walk, depth, where)
    elif isinstance(value, types.ModuleType):
        walk.add(f"module:{value.__name__}:{getattr(value, '__version__', '')}")
        if value.__name__.startswith("course_lib"):
            walk.add(library_hash())
    elif isinstance(value, type):
        _visit_class(value, walk)
    elif (
        isinstance(value, (types.BuiltinFunctionType, np.ufunc))
        or callable(value)
        and (type(value).__module__.split(".")[0] in ("cv2", "numpy", "torch", "scipy", "skimage"))
    ):
        module = getattr(value, "__module__", None) or type(value).__module__
        walk.add(f"builtin:{module}:{getattr(value, '__qualname__', repr(value))}")
    elif isinstance(value, (torch.dtype, torch.device)):
        walk.add(f"{type(value).__name__}:{value}")
    elif _from_library(type(value)) and hasattr(value, "__dict__"):
        walk.add(f"object:{type(value).__qualname__}")
        walk.add(library_hash())
        _visit(vars(value), walk, depth + 1, f"the attributes of {where}")
    else:
        raise NotFingerprintable(
            f"{where} is a {type(value).__qualname__}, whose behaviour cannot be hashed"
        )


def _visit_module(module: nn.Module, walk: _Walk, where: str) -> None:
    walk.modules.append(module)
    _visit_class(type(module), walk)
    for name, tensor in module.state_dict().items():
        walk.add(name)
        _visit(tensor, walk, 0, f"{where}.{name}")


def _visit_class(cls: type, walk: _Walk) -> None:
    walk.add(f"class:{cls.__module__}.{cls.__qualname__}")
    if _from_library(cls):
        walk.add(library_hash())
        return
    try:
        walk.add(inspect.getsource(cls))
    except (OSError, TypeError):  # a notebook class, or one of a compiled package
        for name, member in sorted(vars(cls).items()):
            if isinstance(member, types.FunctionType):  # its methods' code, where readable
                walk.add(f"method:{name}")
                walk.add(_code_text(member))


def _code_text(function: types.FunctionType) -> str | bytes:
    """A function's source, or its byte code where no source can be read (exec, compiled)."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return _bytecode(function.__code__)


def _bytecode(code: types.CodeType) -> bytes:
    """The instructions, constants and names of a code object (and of the code nested in it)."""
    parts = [code.co_code, repr(code.co_names).encode()]
    for constant in code.co_consts:
        parts.append(
            _bytecode(constant) if isinstance(constant, types.CodeType) else repr(constant).encode()
        )
    return b"\x00".join(parts)


def _visit_function(function: types.FunctionType, walk: _Walk, depth: int, where: str) -> None:
    walk.add(f"function:{function.__module__}.{function.__qualname__}")
    if _from_library(function):
        walk.add(library_hash())
        return
    walk.add(_code_text(function))
    _visit(function.__defaults__, walk, depth, f"the defaults of {where}")
    _visit(function.__kwdefaults__, walk, depth, f"the keyword defaults of {where}")
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
        try:
            content = cell.cell_contents
        except ValueError:  # a cell not filled yet (a name defined later in the outer scope)
            continue
        _visit(content, walk, depth + 1, f"{name!r} in the closure of {where}")
    for name in sorted(_global_names(function.__code__)):
        if name in function.__globals__:
            walk.add(f"global:{name}")
            _visit(function.__globals__[name], walk, depth + 1, f"the global {name!r} of {where}")


def _global_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the code nested in it) may read as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names
