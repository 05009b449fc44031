"""The op registry guards itself: every Op of the package has a spec, and every spec runs its ops."""

import importlib
import pkgutil

from op_registry import ERRORS, OPS

import tinygrad_rnn
from tinygrad_rnn.tensor import Op


def package_ops() -> set:
    """Every Op subclass defined in tinygrad_rnn (all its modules imported first)."""
    for info in pkgutil.walk_packages(tinygrad_rnn.__path__, "tinygrad_rnn."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, stack = set(), [Op]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("tinygrad_rnn"):
                found.add(sub)
    return found


def missing_specs(op_classes, specs) -> list:
    """Names of the op classes that no spec names in its ``ops``."""
    covered = {name for spec in specs for name in spec.ops}
    return sorted(cls.__name__ for cls in op_classes if cls.__name__ not in covered)


def test_every_op_of_the_package_has_a_spec():
    ops = package_ops()
    assert len(ops) >= 20, f"found only {sorted(c.__name__ for c in ops)}: the walk missed modules"
    missing = missing_specs(ops, OPS)
    assert not missing, f"ops without an OpSpec in tests/op_registry.py: {missing}"


def test_a_new_op_without_a_spec_is_reported():
    class Cube(Op):  # planted: a new op nobody registered
        name = "cube"

    assert missing_specs({Cube}, OPS) == ["Cube"]


def test_every_error_spec_names_a_registered_op():
    covered = {name for spec in OPS for name in spec.ops}
    assert {name for spec in ERRORS for name in spec.ops} <= covered


def missing_tangent_rules(op_classes) -> list:
    """Names of the op classes that keep ``Op.jvp`` (no tangent rule of their own)."""
    return sorted(cls.__name__ for cls in op_classes if cls.jvp is Op.jvp)


def test_every_op_of_the_package_has_a_tangent_rule():
    missing = missing_tangent_rules(package_ops())
    assert not missing, f"ops without a tangent rule (a jvp method beside backward): {missing}"


def test_an_op_without_a_tangent_rule_is_reported():
    class Cube(Op):  # planted: forward and backward, but no jvp
        name = "cube"

        def forward(self, a):
            self.a = a
            return a**3

        def backward(self, g):
            return 3 * g * self.a**2

    assert missing_tangent_rules({Cube}) == ["Cube"]
