"""Frozen value classes for host paths, without the dataclasses module.

Importing dataclasses pulls in inspect (and ast, dis, tokenize), and each
@dataclass costs about 0.3 ms to create: together a good part of a remote action's
start-up (bench/cold_start.py). `@value` gives what onemetal uses of a frozen
dataclass, from the class annotations and defaults: __init__ (keyword or
positional, defaults, `field(default_factory=...)`, __post_init__), __repr__,
__eq__/__hash__ over the compared fields, ordering with `order=True`, and
`replace`, `asdict`, `fields`. Instances are immutable: assigning raises
AttributeError. Annotations stay strings (`from __future__ import annotations`).

>>> @value(order=True)
... class P:
...     name: str
...     port: int = 22
>>> P("a") < P("b"), P("a", 22) == P(name="a"), replace(P("a"), port=1)
(True, True, P(name='a', port=1))
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

MISSING = object()


class Field:
    __slots__ = ("name", "default", "default_factory", "compare")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING,
                 compare: bool = True) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = MISSING, default_factory: Any = MISSING, compare: bool = True) -> Any:
    """A field's default as a factory (a fresh dict per instance), or a field left out of ==."""
    return Field(default, default_factory, compare)


def _methods(cls: type, specs: list[Field], order: bool) -> dict[str, Any]:
    """Source of the generated methods, compiled once per class (what @dataclass does too)."""
    names = [f.name for f in specs]
    params, body = [], []
    for f in specs:
        if f.default_factory is not MISSING:
            params.append(f"{f.name}=_MISSING")
            body.append(f" d[{f.name!r}] = _f_{f.name}() if {f.name} is _MISSING else {f.name}")
        else:
            params.append(f.name if f.default is MISSING else f"{f.name}=_d_{f.name}")
            body.append(f" d[{f.name!r}] = {f.name}")
    if hasattr(cls, "__post_init__"):
        body.append(" self.__post_init__()")
    key = "".join(f"self.{f.name}," for f in specs if f.compare)
    src = [f"def __init__(self, {', '.join(params)}):", " d = self.__dict__", *body,
           f"def _key(self): return ({key})",
           "def __eq__(self, other):",
           " if other.__class__ is not self.__class__: return NotImplemented",
           " return _key(self) == _key(other)",
           "def __hash__(self): return hash(_key(self))",
           "def __repr__(self):",
           f" return f'{cls.__qualname__}(" + ", ".join(f"{n}={{self.{n}!r}}" for n in names)
           + ")'"]
    if order:
        for op, sym in (("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
            src += [f"def __{op}__(self, other):",
                    " if other.__class__ is not self.__class__: return NotImplemented",
                    f" return _key(self) {sym} _key(other)"]
    scope: dict[str, Any] = {"_MISSING": MISSING}
    for f in specs:
        scope[f"_d_{f.name}"] = f.default
        scope[f"_f_{f.name}"] = f.default_factory
    exec("\n".join(src), scope)  # noqa: S102 - our own source text, built from field names
    return {k: scope[k] for k in ("__init__", "__eq__", "__hash__", "__repr__")
            + (("__lt__", "__le__", "__gt__", "__ge__") if order else ())}


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def value(cls: type | None = None, /, *, order: bool = False) -> Any:
    """Class decorator: a frozen value class; see the module docstring."""
    def make(cls: type) -> type:
        specs: list[Field] = []
        for base in reversed(cls.__mro__[1:]):  # a value class may extend another
            specs = [f for f in specs if f.name not in getattr(base, "__fields__", {})]
            specs += getattr(base, "__fields__", {}).values()
        for name, note in cls.__dict__.get("__annotations__", {}).items():
            if "ClassVar" in str(note):
                continue
            attr = cls.__dict__.get(name, MISSING)
            spec = attr if isinstance(attr, Field) else Field(default=attr)
            spec.name = name
            specs = [f for f in specs if f.name != name] + [spec]
            if isinstance(attr, Field):
                delattr(cls, name)
        for name, method in _methods(cls, specs, order).items():
            if name not in cls.__dict__:  # as @dataclass: a method the class defines stays
                setattr(cls, name, method)
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment]
        cls.__fields__ = {f.name: f for f in specs}  # type: ignore[attr-defined]
        return cls

    return make if cls is None else make(cls)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a value class or instance, in order (dataclasses.fields)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return tuple(cls.__fields__.values())  # type: ignore[attr-defined]


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of `obj` with some fields changed (dataclasses.replace)."""
    return type(obj)(**{**{n: getattr(obj, n) for n in type(obj).__fields__}, **changes})


def _plain(item: Any, factory: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    if hasattr(type(item), "__fields__"):
        return factory([(n, _plain(getattr(item, n), factory)) for n in type(item).__fields__])
    if isinstance(item, tuple) and hasattr(item, "_fields"):  # a named tuple takes positions
        return type(item)(*[_plain(x, factory) for x in item])
    if isinstance(item, (list, tuple)):
        return type(item)(_plain(x, factory) for x in item)
    if isinstance(item, dict):
        return type(item)((_plain(k, factory), _plain(v, factory)) for k, v in item.items())
    return item


def asdict(obj: Any) -> dict[str, Any]:
    """`obj` as nested dicts, lists and tuples (dataclasses.asdict)."""
    return _plain(obj, dict)
