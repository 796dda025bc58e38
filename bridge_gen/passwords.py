"""mosquitto's password file format, written without mosquitto_passwd.

mosquitto 2.0 stores `user:$7$<iterations>$<salt>$<hash>`: PBKDF2 with
SHA-512 over the password, the salt and hash in base64. Writing it here
keeps plaintext passwords out of every rendered file and image.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# mosquitto_passwd takes 101 in 2.0; the broker reads the count from each
# line, and a thousand costs a login about a millisecond while making a
# stolen file a tenth as fast to attack.
ITERATIONS = 1000
_SALT_BYTES = 12


def hash_line(
    user: str,
    password: str,
    *,
    salt: bytes | None = None,
    iterations: int = ITERATIONS,
) -> str:
    """One line of a mosquitto password file."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"{user}:$7${iterations}${encoded[0]}${encoded[1]}"


def verify(line: str, user: str, password: str) -> bool:
    """Whether a password file line accepts `user` with `password`."""
    name, _, rest = line.partition(":")
    parts = rest.split("$")
    if name != user or len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    if not 1 <= iterations <= 10_000_000:
        return False
    expected = hash_line(user, password, salt=salt, iterations=iterations)
    return hmac.compare_digest(expected, line)
