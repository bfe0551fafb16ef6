"""The seccomp filter of the code sandbox, as the classic BPF program bubblewrap loads (``bwrap --seccomp FD``).

It refuses, for every process of the sandbox, what the namespaces and resource limits leave open:

- a new user namespace (``unshare`` or ``clone`` with CLONE_NEWUSER: EPERM; ``clone3``, whose flags a filter
  cannot read, is ENOSYS so that the C library falls back to ``clone``). Inside one, the program would be root
  again, with every capability over new mount, network and pid namespaces: the kernel's largest attack surface.
  bubblewrap's ``--disable-userns`` does the same only when the sandbox has a user namespace of its own, which a
  server running as root does not give it;
- memory that no process's resident set shows, which the sandbox's memory supervisor could not count: memory
  file descriptors (``memfd_create``, ``memfd_secret``) and System V shared memory and message queues
  (``shmget``, ``msgget``);
- every system call of another ABI than the server's (32-bit x86, x32): their numbers differ.

Only the processors listed in ``_ARCHITECTURES`` have a filter; elsewhere the sandbox refuses to start.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

from lollms_server.core.errors import UnavailableError

CLONE_NEWUSER = 0x10000000

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JUMP_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
# Offsets in struct seccomp_data: the system call number, the ABI, the low half of the first argument (every
# architecture listed is little-endian).
_NUMBER, _ARCH, _FIRST_ARGUMENT = 0, 4, 16


@dataclass(frozen=True)
class _Architecture:
    audit_arch: int  # AUDIT_ARCH_* (linux/audit.h): the ABI a system call was made with
    unshare: int
    clone: int  # the flags are its first argument on every architecture listed
    clone3: int
    memory_outside_processes: tuple[int, ...]  # memfd_create, memfd_secret, shmget, msgget
    foreign_numbers_from: int | None = None  # x32 system calls carry this bit in their number


_ARCHITECTURES = {
    "x86_64": _Architecture(0xC000003E, 272, 56, 435, (319, 447, 29, 68), foreign_numbers_from=0x40000000),
    "aarch64": _Architecture(0xC00000B7, 97, 220, 435, (279, 447, 194, 186)),
}


def _instruction(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def _refused(number: int, error: int) -> list[bytes]:
    """System call ``number`` fails with ``error`` (the system call number is loaded)."""
    return [_instruction(_JUMP_EQUAL, number, 0, 1), _instruction(_RETURN, _ERRNO | error)]


def _refused_with_new_user_namespace(number: int) -> list[bytes]:
    """System call ``number`` fails with EPERM when its first argument asks for a user namespace."""
    return [
        _instruction(_JUMP_EQUAL, number, 0, 4),
        _instruction(_LOAD_WORD, _FIRST_ARGUMENT),
        _instruction(_JUMP_ANY_BIT, CLONE_NEWUSER, 0, 1),
        _instruction(_RETURN, _ERRNO | errno.EPERM),
        _instruction(_RETURN, _ALLOW),
    ]


def seccomp_program(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (``platform.machine()`` by default); UnavailableError where there is none."""
    machine = machine or platform.machine()
    arch = _ARCHITECTURES.get(machine)
    if arch is None:
        raise UnavailableError(
            f"the code sandbox has no seccomp filter for this processor ({machine}); it runs on "
            f"{' and '.join(_ARCHITECTURES)}"
        )
    program = [
        _instruction(_LOAD_WORD, _ARCH),
        _instruction(_JUMP_EQUAL, arch.audit_arch, 1, 0),
        _instruction(_RETURN, _KILL_PROCESS),
        _instruction(_LOAD_WORD, _NUMBER),
    ]
    if arch.foreign_numbers_from is not None:
        program += [
            _instruction(_JUMP_AT_LEAST, arch.foreign_numbers_from, 0, 1),
            _instruction(_RETURN, _ERRNO | errno.ENOSYS),
        ]
    program += _refused_with_new_user_namespace(arch.unshare)
    program += _refused_with_new_user_namespace(arch.clone)
    program += _refused(arch.clone3, errno.ENOSYS)
    for number in arch.memory_outside_processes:
        program += _refused(number, errno.EPERM)
    program.append(_instruction(_RETURN, _ALLOW))
    return b"".join(program)
