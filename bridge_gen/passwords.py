"""mosquitto's password file format, written without mosquitto_passwd.

mosquitto 2.0 stores `user:$7$<iterations>$<salt>$<hash>`: PBKDF2 with
SHA-512 over the password, the salt and hash in base64. Writing it here
keeps plaintext passwords out of every rendered file and image.
"""

from __future__ import annotations

import base64
import hashlib
import os

ITERATIONS = 101  # mosquitto_passwd's own choice in 2.0
_SALT_BYTES = 12


def hash_line(user: str, password: str, *, salt: bytes | None = None) -> str:
    """One line of a mosquitto password file."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"{user}:$7${ITERATIONS}${encoded[0]}${encoded[1]}"


def verify(line: str, user: str, password: str) -> bool:
    """Whether a password file line accepts `user` with `password`."""
    name, _, rest = line.partition(":")
    parts = rest.split("$")
    if name != user or len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    return hash_line(user, password, salt=salt) == line
