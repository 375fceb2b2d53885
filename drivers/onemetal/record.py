"""Frozen value classes for host paths, without the dataclasses module.

Importing dataclasses pulls in inspect (and ast, dis, tokenize), and each
@dataclass costs about 0.3 ms to create: together a good part of a remote action's
start-up (bench/cold_start.py). `@value` gives what onemetal uses of a frozen
dataclass, from the class annotations and defaults: __init__ (keyword or
positional, defaults, `field(default_factory=...)`, __post_init__), __repr__,
__eq__/__hash__ over the compared fields, ordering with `order=True`, and
`replace`, `asdict`, `fields`. Instances are immutable: assigning raises
AttributeError. Annotations stay strings (`from __future__ import annotations`).
A class costs about 0.04 ms to create, an instance about 1.5 us.

>>> @value(order=True)
... class P:
...     name: str
...     port: int = 22
>>> P("a") < P("b"), P("a", 22) == P(name="a"), replace(P("a"), port=1)
(True, True, P(name='a', port=1))
"""

from __future__ import annotations

import operator
from operator import attrgetter

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
    """The generated methods, as closures over the field list: compiling source per class, as
    @dataclass does, would cost a host about 0.2 ms per class."""
    names = tuple(f.name for f in specs)
    defaults = {f.name: f for f in specs
                if f.default is not MISSING or f.default_factory is not MISSING}
    post_init = getattr(cls, "__post_init__", None)
    compared = [f.name for f in specs if f.compare]
    getter = attrgetter(*compared) if compared else (lambda self: ())
    key = getter if len(compared) != 1 else (lambda self: (getter(self),))
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{qualname}() takes {len(names)} arguments, got {len(args)}")
        d = self.__dict__
        d.update(zip(names, args))
        for name in names[len(args):]:
            if name in kwargs:
                d[name] = kwargs.pop(name)
            elif name in defaults:
                spec = defaults[name]
                d[name] = spec.default if spec.default_factory is MISSING else spec.default_factory()
            else:
                raise TypeError(f"{qualname}() missing argument {name!r}")
        if kwargs:
            raise TypeError(f"{qualname}() got unexpected or repeated arguments {sorted(kwargs)}")
        if post_init is not None:
            post_init(self)

    def __eq__(self: Any, other: Any) -> Any:
        return key(self) == key(other) if other.__class__ is self.__class__ else NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    def __repr__(self: Any) -> str:
        return f"{qualname}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    methods: dict[str, Any] = {"__init__": __init__, "__eq__": __eq__, "__hash__": __hash__,
                               "__repr__": __repr__}
    if order:
        for op in ("lt", "le", "gt", "ge"):
            methods[f"__{op}__"] = _compare(getattr(operator, op), key)
    return methods


def _compare(op: Callable[[Any, Any], bool], key: Callable[[Any], tuple[Any, ...]]) -> Any:
    def compare(self: Any, other: Any) -> Any:
        return op(key(self), key(other)) if other.__class__ is self.__class__ else NotImplemented
    return compare


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
