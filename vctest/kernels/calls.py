"""Calls between compiled kernels through an address, so each kernel is compiled once.

Why
---
When one Numba kernel calls another directly, the caller's machine code is
built from the callee's LLVM module linked into its own, and LLVM optimises
and emits the whole merged module again.  Every layer of a call tree thus
re-compiles everything below it, and a ``prange`` loop adds four such layers
(the loop body, two gufunc wrappers and the kernel).  The engine's fit
(:func:`vctest.kernels.engine.fit_model`) called from the bootstrap's
``prange`` body was compiled five times over, and the objective kernels
under it six times.

:func:`call_at` calls a kernel through the address of its compiled code
instead.  The caller then holds a call instruction, not a copy of the callee:
every kernel's code is generated exactly once, and each layer compiles only
its own lines.  The callee's own compilation (or load from the cache) happens
once per process, in Python, when :func:`address_of` asks for its address.

How
---
``call_at(kernel, table, slot, args)`` is ``kernel(*args)``.  Run by the Python
interpreter (:func:`vctest.kernels._jit.interpreted`, ``NUMBA_DISABLE_JIT=1``)
it is exactly that.  Compiled, it types the call as Numba types a call of
``kernel`` (the same return type), and emits a call of the function at
``address`` with Numba's own calling convention, propagating an exception
the callee raises.  The address is a run-time ``int64`` read from row ``slot``
of an int64 table (``Settings.calls``, slots ``CALL_*`` of
:mod:`vctest.kernels.types`, filled by :func:`vctest.kernels.engine.with_calls`),
so the caller's code does not depend on where the callee was loaded and stays
cacheable.  The row comes from :func:`address_of`: the entry point of
``kernel``'s one specialisation and a tag of its argument types.

The address must be that of the specialisation the caller was typed with:
with other argument types the call would read its arguments wrongly.  So
the compiled call compares the row's tag with the tag of the types it was
typed with and raises ``RuntimeError`` instead of calling on a mismatch;
every vctest kernel has one specialisation anyway (inputs are converted once
at the boundary; the last test of the suite checks it), and :func:`address_of`
refuses a kernel that has more than one.

Which calls
-----------
The engine's layers: the bootstrap's ``prange`` body calls
:func:`~vctest.kernels.bootstrap.replicate`, which calls
:func:`~vctest.kernels.engine.fit_model`, which calls the optimiser
(:func:`~vctest.kernels.optimize.optimize`, :func:`~vctest.kernels.optimize.bfgs`,
:func:`~vctest.kernels.optimize.derivatives`), the objective
(:func:`~vctest.kernels.objective.evaluate` and the two kernels it chooses
between), the gradient, the cross-products and the work arrays -- all by
address.  Inside the objective kernels the numerical leaves (``pwls``,
``factor_solve``, the family functions) are still called directly: each is
linked into one or two callers only.

Compiled, ``call_at`` is typed and lowered with Numba's low-level extension
API (``type_callable``, ``lower_builtin``), so it adds no function of its own
to compile.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numba
from numba.core import cgutils
from numba.core.imputils import lower_builtin
from numba.extending import type_callable


def signature_tag(argtypes: tuple[Any, ...]) -> int:
    """A 62-bit tag of a kernel signature (the same in every process)."""
    text = ", ".join(str(t) for t in argtypes).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 2


def call_at(kernel: Any, table: Any, slot: int, args: tuple[Any, ...]) -> Any:
    """``kernel(*args)``; compiled, a call of the code whose address is ``table[slot, 0]``.

    ``table[slot, 1]`` is the :func:`signature_tag` of the arguments the
    address was made for; compiled code checks it against the types it calls
    with and raises ``RuntimeError`` on a mismatch instead of calling.
    """
    return kernel(*args)


@type_callable(call_at)
def _type_call_at(context: Any) -> Any:
    def typer(kernel: Any, table: Any, slot: Any, args: Any) -> Any:
        if not isinstance(kernel, numba.types.Dispatcher) or not isinstance(
                args, numba.types.BaseTuple):
            return None
        callee = context.resolve_function_type(kernel, tuple(args.types), {})
        return None if callee is None else callee.return_type

    return typer


@lower_builtin(call_at, numba.types.Any, numba.types.Any, numba.types.Any, numba.types.Any)
def _lower_call_at(context: Any, builder: Any, sig: Any, llargs: Any) -> Any:
    kernel_ty, table_ty, slot_ty, args_ty = sig.args
    argtys = tuple(args_ty.types)
    restype = sig.return_type
    expected = signature_tag(argtys)
    name = kernel_ty.dispatcher.py_func.__qualname__
    table = context.make_array(table_ty)(context, builder, llargs[1])
    slot = context.cast(builder, llargs[2], slot_ty, numba.types.intp)
    zero = context.get_constant(numba.types.intp, 0)
    one = context.get_constant(numba.types.intp, 1)
    address = builder.load(cgutils.get_item_pointer(context, builder, table_ty, table,
                                                    [slot, zero]))
    tag = builder.load(cgutils.get_item_pointer(context, builder, table_ty, table, [slot, one]))
    wrong = builder.icmp_signed("!=", tag, tag.type(expected))
    with builder.if_then(wrong, likely=False):
        context.call_conv.return_user_exc(
            builder, RuntimeError,
            (f"internal error: the address of kernel {name} was made for other argument "
             "types; please report this",))
    values = [builder.extract_value(llargs[3], i) for i in range(len(argtys))]
    fnty = context.call_conv.get_function_type(restype, argtys)
    fnptr = builder.inttoptr(address, fnty.as_pointer())
    status, result = context.call_conv.call_function(builder, fnptr, restype, argtys, values)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return result


def return_type(kernel: Any) -> Any:
    """The Numba return type of ``kernel``'s one compiled specialisation (None as Python)."""
    if not isinstance(kernel, numba.core.dispatcher.Dispatcher):
        return None
    return kernel.nopython_signatures[0].return_type


def address_of(kernel: Any, *args: Any) -> tuple[int, int]:
    """The address of ``kernel``'s compiled code for arguments like ``args``, and its tag.

    Compiles the kernel (or loads it from the cache) for the Numba types of
    ``args`` (values, or Numba types themselves); the values are not used.
    Returns ``(address, signature_tag(types))``, a row of a call table.
    With ``NUMBA_DISABLE_JIT=1`` (``kernel`` is then a plain function) it
    returns ``(0, 0)``, which nothing reads.

    Raises
    ------
    RuntimeError
        If ``kernel`` has been compiled for another signature as well: vctest's
        kernels have one specialisation each.
    """
    if not isinstance(kernel, numba.core.dispatcher.Dispatcher):
        return 0, 0
    signature = tuple(a if isinstance(a, numba.types.Type) else numba.typeof(a) for a in args)
    kernel.compile(signature)
    if len(kernel.overloads) != 1:
        raise RuntimeError(
            f"internal error: kernel {kernel.py_func.__qualname__} has "
            f"{len(kernel.overloads)} compiled specialisations "
            f"({', '.join(str(s) for s in kernel.signatures)}); vctest's kernels must have "
            "one, converted once at the boundary.  Please report this.")
    result = kernel.overloads[signature]
    address = int(result.library.get_pointer_to_function(result.fndesc.llvm_func_name))
    return address, signature_tag(signature)
