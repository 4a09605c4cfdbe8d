"""Departments: who may see and act on a programme's batches through the HTTP API.

A department user is a signing device of role ``department`` (its own key, so the user
who submits and the user who approves are told apart by their signatures, not by a name
they type), listed in ``disbursement_department_users`` with its department. A programme
belongs to at most one department; a department sees only its own programmes' batches:
anything else answers "not found", so it cannot even learn that another department's
batch exists.
"""

from __future__ import annotations

import re

import asyncpg

from engine.disbursement.users import normalise_user
from engine.errors import ConflictError, NotFoundError, UsageError
from engine.taps.devices import DeviceRegistry

DEPARTMENT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def check_department(department: str) -> str:
    """``department`` if it is 1-32 characters of ``[A-Za-z0-9_-]`` (``UsageError`` otherwise).

    >>> check_department("civil-affairs")
    'civil-affairs'
    """
    if not DEPARTMENT_PATTERN.fullmatch(department or ""):
        raise UsageError(f"department {department!r}: must be 1-32 characters of [A-Za-z0-9_-]")
    return department


async def add_user(pool: asyncpg.Pool, devices: DeviceRegistry, device_id: str,
                   department: str) -> tuple[str, bytes]:
    """Register a department user (a signing device); return its id as stored and its
    secret (shown once).

    The id is the user name recorded as submitter or approver, so it is stored in the
    normal form of :func:`engine.disbursement.users.normalise_user`: ``ＡＬＩＣＥ`` is
    ``alice``, and is refused when ``alice`` exists. The client signs with the stored id.

    Raises
    ------
    UsageError
        Bad department, or ``device_id`` is not a user name.
    ConflictError
        The (normalised) device id exists.
    """
    check_department(department)
    device_id = normalise_user(device_id, "device_id")
    secret = await devices.add(device_id, "department")
    await pool.execute("INSERT INTO disbursement_department_users (device_id, department) VALUES ($1, $2)",
                       device_id, department)
    return device_id, secret


async def assign_programme(pool: asyncpg.Pool, programme_code: str, department: str) -> None:
    """Make ``department`` the owner of a programme that has none (the same owner again
    changes nothing).

    Raises
    ------
    NotFoundError
        No such programme.
    ConflictError
        The programme belongs to another department (its batches are that department's).
    """
    check_department(department)
    owner = await pool.fetchval(
        "UPDATE disbursement_programmes SET department = coalesce(department, $2) WHERE code = $1 "
        "RETURNING department", programme_code, department)
    if owner is None:
        raise NotFoundError(f"no programme {programme_code}")
    if owner != department:
        raise ConflictError(f"programme {programme_code} exists with a different department ({owner})")


async def department_of(pool: asyncpg.Pool, device_id: str) -> str:
    """The department of a department user (``NotFoundError`` for a device that is none)."""
    department = await pool.fetchval(
        "SELECT department FROM disbursement_department_users WHERE device_id = $1", device_id)
    if department is None:
        raise NotFoundError(f"device {device_id!r} belongs to no department")
    return department


async def check_programme(pool: asyncpg.Pool, department: str, programme_code: str) -> None:
    """Refuse a programme the department does not own, as if it did not exist."""
    if await pool.fetchval("SELECT department FROM disbursement_programmes WHERE code = $1",
                           programme_code) != department:
        raise NotFoundError(f"no programme {programme_code}")


async def check_batch(pool: asyncpg.Pool, department: str, batch_id: int) -> None:
    """Refuse a batch of a programme the department does not own, as if it did not exist."""
    owner = await pool.fetchval(
        "SELECT p.department FROM disbursement_batches b JOIN disbursement_programmes p ON p.code = b.programme_code"
        " WHERE b.id = $1", batch_id)
    if owner != department:
        raise NotFoundError(f"no batch {batch_id}")
