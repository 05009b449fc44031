import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
# ci (fast, reproducible) unless HYPOTHESIS_PROFILE=dev asks for more examples.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The test-only 'strict' device (a CuPy-like stand-in) and the device fixtures, for every test.
import strict_backend  # noqa: E402

strict_backend.register()

from devices import cuda, device  # noqa: E402,F401
