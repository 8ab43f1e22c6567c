"""The scripted capacity curve that fake_loadgen.py plays for the capacity scenarios."""
import zlib


def capacity_of(model):
    """The scripted capacity of a model: 2 000 to 9 000 req/s, fixed per name."""
    return 2000 + zlib.crc32((model or "").encode()) % 7001


def capacity_curve(model, rate, connections):
    """(achieved req/s, p50 us, p99 us) on the scripted curve; rate None is the closed loop."""
    cap = capacity_of(model)
    if rate is None:
        return 0.95 * cap, connections / (0.95 * cap) * 1e6, 3 * connections / (0.95 * cap) * 1e6
    rho = rate / cap
    if rho < 1:
        p50 = 200 * (1 + 0.05 * rho / (1 - rho))
        return rate, p50, 4 * p50 * (1 + 2 * rho / (1 - rho))
    return float(cap), 50_000 * rho, 200_000 * rho

