"""A run's settings: built once from the command line (cli.settings_for), kept in the manifest so
that --resume runs with the same ones, and read by attribute everywhere.
"""
import dataclasses
import os
from dataclasses import dataclass, field

from .hosts_file import Client, Server


@dataclass(frozen=True)
class NetworkSettings:
    """--net and the link it shapes (network.make builds it)."""
    kind: str = "loopback"           # loopback | unix | veth | wan
    rtt_ms: float = None             # wan only
    loss_pct: float = 0.0
    jitter_ms: float = 0.0
    emulator: str = "auto"           # auto | netem | linkemu


@dataclass(frozen=True)
class HostsSettings:
    """--hosts FILE, parsed (hosts_file.Hosts) and kept whole so that a resumed run needs no file."""
    file: str
    server: Server
    clients: tuple[Client, ...]

    @staticmethod
    def of(path, plan):
        return HostsSettings(os.path.abspath(path), plan.server, plan.clients)

    def to_json(self):
        return {"file": self.file, "server": vars(self.server), "clients": [vars(c) for c in self.clients]}

    @staticmethod
    def from_json(doc):
        if not doc:
            return None
        server = doc.get("server")
        return HostsSettings(doc.get("file"), Server(**server) if isinstance(server, dict) else Server(),
                             tuple(Client(**c) for c in doc.get("clients", ())))


@dataclass(frozen=True)
class CapacitySelection:
    """The capacity sweeps the run makes after its matrix."""
    models: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    slo_p99_ms: float = None         # --slo-p99-ms; None: each scenario's own objective


@dataclass(frozen=True)
class Settings:
    profile: str
    repeat: int
    warmup: str
    duration: str
    models: tuple[str, ...]
    scenarios: tuple[str, ...]
    started_at: str
    git_rev: str
    build_dir: str
    seed: int = 1
    min_effects: dict = field(default_factory=dict)     # metric -> smallest change called a change
    network: NetworkSettings = NetworkSettings()
    hosts: HostsSettings = None
    capacity: CapacitySelection = CapacitySelection()
    soak_minutes: float = None       # the soak's length per model (soak.py); None: the run has no soak
    # An A/B run (--baseline REV or --baseline-bin DIR): trials per side, and what A is.
    trials: int = None
    baseline: str = None
    baseline_bin: str = None
    baseline_loadgen: bool = False
    baseline_commit: str = None
    # The models that are servers of server files (server_file.py): {name: the file's path}.
    server_files: dict = field(default_factory=dict)

    @property
    def ab(self):
        return bool(self.trials)

    @property
    def clients(self):
        """The hosts file's clients, () without --hosts."""
        return self.hosts.clients if self.hosts else ()

    @property
    def server(self):
        """Where the server runs: Server() (this machine) without --hosts."""
        return self.hosts.server if self.hosts else Server()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        doc = dataclasses.asdict(self)
        doc.update(models=list(self.models), scenarios=list(self.scenarios),
                   hosts=self.hosts.to_json() if self.hosts else None,
                   capacity={**doc["capacity"], "models": list(self.capacity.models),
                             "scenarios": list(self.capacity.scenarios)})
        return doc

    @staticmethod
    def from_json(doc):
        """The settings of a manifest: this schema's, or the first one's (its network was "net")."""
        names = {f.name for f in dataclasses.fields(Settings)}
        kept = {k: v for k, v in doc.items() if k in names}
        network = doc.get("network") or doc.get("net") or {}
        capacity = doc.get("capacity") or {}
        return Settings(**{**kept, "models": tuple(doc.get("models") or ()),
                           "scenarios": tuple(doc.get("scenarios") or ()),
                           "min_effects": dict(doc.get("min_effects") or {}),
                           "server_files": dict(doc.get("server_files") or {}),
                           "network": NetworkSettings(**network),
                           "hosts": HostsSettings.from_json(doc.get("hosts")),
                           "capacity": CapacitySelection(tuple(capacity.get("models") or ()),
                                                         tuple(capacity.get("scenarios") or ()),
                                                         capacity.get("slo_p99_ms"))})
