"""Settings for the test suite: the environment-driven settings with a throwaway secret."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# The test client speaks plain http; the production default would answer every request with a
# redirect to https. The other HTTPS settings keep their production values.
SECURE_SSL_REDIRECT = False
