"""The hosts file of `./run_all.sh --hosts FILE`: a server and one or more clients, each an ssh
destination or `local` (this machine, where the driver runs):

    ssh-config /path/to/ssh_config      # optional: ssh -F FILE (default: the user's own config)
    server bench@srv1 address=10.0.0.1 cpus=0   # address= is what the clients connect to
    client bench@client1.example.net cpus=0-7
    client client2 address=10.0.1.1 threads=4

A bad line is a HostsFileError with one line naming the file, the line and what is wrong.
How a run uses the hosts: ssh_session.py (each host's ssh master and folder), remote_server.py
(a server on a host of its own), client_runs.py (one point's loadgens, their barrier and merge).
"""
import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass

HOST_RE = re.compile(r"^[A-Za-z0-9_.@:%\[\]-]+$")
CPUS_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


class HostsFileError(Exception):
    """A hosts file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Server:
    host: str = "local"              # ssh destination, or "local"
    address: str = None              # what the clients connect to (default: see plan_clients)
    cpus: str = None                 # taskset list on the server's host (default: CpuLayout's)
    bin: str = None                  # a folder on the host with server-<model>: no copy
    loadgen: str = None              # a loadgen on the host, for sample-server: no copy
    ssh_config: str = None           # ssh -F

    @property
    def local(self):
        return self.host == "local"


@dataclass(frozen=True)
class Hosts:
    """A parsed hosts file."""
    server: Server
    clients: tuple                   # of Client


@dataclass(frozen=True)
class Client:
    host: str                        # ssh destination, or "local"
    address: str = None              # the server address it connects to (default: see target)
    cpus: str = None                 # taskset list on the client
    threads: int = None
    loadgen: str = None              # a loadgen already on the client: no copy
    ssh_config: str = None           # ssh -F

    @property
    def local(self):
        return self.host == "local"


# ---------------------------------------------------------------------------------- the file

def parse_hosts_file(path):
    """The server and clients of a hosts file (Hosts), or HostsFileError."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise HostsFileError(f"--hosts {path}: cannot read it ({e.__class__.__name__})")
    server, clients, ssh_config = None, [], None
    for number, raw in enumerate(lines, 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"--hosts {path}:{number}"
        keyword, args = words[0], words[1:]
        if keyword == "ssh-config":
            if len(args) != 1:
                raise HostsFileError(f"{where}: expected 'ssh-config FILE'")
            ssh_config = os.path.join(os.path.dirname(os.path.abspath(path)), args[0])
        elif keyword in ("server", "client"):
            host, options = parse_host_line(where, keyword, args)
            if keyword == "client":
                clients.append((host, options))
            elif server is not None:
                raise HostsFileError(f"{where}: a second 'server' line (one server per run)")
            else:
                server = (host, options)
        else:
            raise HostsFileError(f"{where}: unknown line '{keyword}' (server, client, ssh-config)")
    return assemble(path, server, clients, ssh_config)


def parse_host_line(where, keyword, args):
    allowed = {"server": ("address", "cpus", "bin", "loadgen"),
               "client": ("address", "cpus", "threads", "loadgen")}[keyword]
    if not args:
        raise HostsFileError(f"{where}: expected '{keyword} HOST' (an ssh destination or local)")
    host, options = args[0], {}
    if not HOST_RE.match(host) or host.startswith("-"):
        raise HostsFileError(f"{where}: '{host}' is not an ssh destination (user@host, host or alias)")
    for arg in args[1:]:
        key, eq, value = arg.partition("=")
        if not eq or key not in allowed or not value:
            raise HostsFileError(f"{where}: unknown option '{arg}' ({'=, '.join(allowed)}=)")
        options[key] = check_option(where, key, value)
    return host, options


def check_option(where, key, value):
    if key == "address":
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise HostsFileError(f"{where}: address={value} is not an IPv4 address")
    if key == "cpus" and not CPUS_RE.match(value):
        raise HostsFileError(f"{where}: cpus={value} is not a CPU list such as 0-3 or 1,3")
    if key == "threads":
        if not value.isdigit() or int(value) < 1:
            raise HostsFileError(f"{where}: threads={value} is not a positive integer")
        return int(value)
    if key in ("loadgen", "bin") and not value.startswith("/"):
        raise HostsFileError(f"{where}: {key}={value} must be an absolute path on its host")
    return value


def assemble(path, server, clients, ssh_config):
    if server is None:
        raise HostsFileError(f"--hosts {path}: no 'server HOST' line")
    if not clients:
        raise HostsFileError(f"--hosts {path}: no 'client HOST' line")
    if ssh_config is not None and not os.path.isfile(ssh_config):
        raise HostsFileError(f"--hosts {path}: ssh-config {ssh_config}: no such file")
    server_host, server_options = server
    if server_host == "local" and server_options.keys() - {"address"}:
        raise HostsFileError(f"--hosts {path}: cpus=, bin= and loadgen= are for a server on another host "
                             "(a local server is pinned like any other run's)")
    default_address = server_options.get("address")
    return Hosts(Server(server_host, ssh_config=ssh_config, **server_options),
                 tuple(Client(host, address=options.get("address", default_address), cpus=options.get("cpus"),
                              threads=options.get("threads"), loadgen=options.get("loadgen"),
                              ssh_config=ssh_config) for host, options in clients))


def listening_everywhere(spec):
    """The point with the server bound to every address, so each client's link reaches it."""
    return dataclasses.replace(spec, server_flags=(*spec.server_flags, "--host", "0.0.0.0"))


def is_remote(server):
    return server is not None and not server.local
