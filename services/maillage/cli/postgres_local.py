"""A PostgreSQL server of this machine's own (Debian's `postgresql` package), started in a directory of its own.

What the test session runs the services on, as it runs Kafka (kafka_local.py). `initdb` and the server refuse to
run as root, so as root they run as the `postgres` user, in a directory that user owns; the server listens on
127.0.0.1 only, its socket in that directory, and takes the superuser's password only (SCRAM)."""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maillage.cli.kafka_local import free_port

SERVICE_USER = "postgres"
SUPERUSER = "maillage"


def server_dir(data_dir: Path) -> Path:
    """Where `maillage up` keeps its server: under the data directory; as root, in the server user's home
    (Debian's /var/lib/postgresql), one directory per data directory, since the server runs as that user, who
    may not enter root's private data directory."""
    if os.geteuid() != 0:
        return data_dir / "postgres"
    home = Path(pwd.getpwnam(SERVICE_USER).pw_dir)
    return home / "maillage" / hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (the Makefile installs Debian's `postgresql`)."""


def server_bin() -> Path:
    """The newest installed server's binaries: Debian keeps them out of PATH, in /usr/lib/postgresql/N/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path is None:
        raise PostgresUnavailable("no initdb: install Debian's postgresql package (make test does)")
    return Path(on_path).resolve().parent


@dataclass
class LocalPostgres:
    """One server; `start()` creates its cluster, launches it and waits until it answers."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    # Off for a test server: a crash loses the last commits, and nothing of a test outlives the session.
    durable: bool = True
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    # Its certificate chain and key (PEM): connections over TLS (the services ask for `ssl=verify-full`).
    tls: tuple[Path, Path] | None = None
    # The address it listens on (a name or address other machines reach, across machines).
    listen: str = "127.0.0.1"
    # Its own pg_hba.conf (over TCP, only TLS with a password: `database-server`), else initdb's.
    hba_file: Path | None = None

    @property
    def cluster(self) -> Path:
        return self.data_dir / "cluster"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, *command: str | Path) -> list[str]:
        argv = [str(part) for part in command]
        return ["runuser", "-u", SERVICE_USER, "--", *argv] if os.geteuid() == 0 else argv

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVICE_USER)
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def prepare(self) -> None:
        """Its directory, owned by the server's user, and its cluster, made once (kept across runs)."""
        if not self.data_dir.parent.exists():  # the server's user must enter it too (never chown one that was there)
            self.data_dir.parent.mkdir(mode=0o700, parents=True)
            self._own(self.data_dir.parent)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.data_dir)
        if not (self.cluster / "PG_VERSION").exists():
            self._initdb()

    def _options(self) -> list[str]:
        # Every service holds a pool of its own (up to 15 connections): room for a whole Pôle and its tests.
        settings = [f"listen_addresses={self.listen}", "max_connections=300"]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        if self.tls is not None:
            settings += ["ssl=on", f"ssl_cert_file={self.tls[0]}", f"ssl_key_file={self.tls[1]}"]
        if self.hba_file is not None:
            settings.append(f"hba_file={self.hba_file}")
        return ["-p", str(self.port), "-k", str(self.data_dir), *(part for s in settings for part in ("-c", s))]

    def start(self, *, timeout: float = 60.0) -> None:
        """Started in the background by pg_ctl (the test session's server)."""
        self.prepare()
        log = self.data_dir / "server.log"
        options = " ".join(self._options())
        start = self._as_owner(server_bin() / "pg_ctl", "-D", self.cluster, "-l", log, "-o", options, "-w", "start")
        subprocess.run([*start, "-t", str(int(timeout))], check=True, capture_output=True)

    def launch(self, popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen) -> subprocess.Popen[bytes]:
        """The server in the foreground, as a child of the caller (`maillage up` supervises it like a broker):
        SIGTERM stops it once its clients are gone; as root it runs as the server's user."""
        self.prepare()
        argv = [str(server_bin() / "postgres"), "-D", str(self.cluster), *self._options()]
        owner = {"user": SERVICE_USER, "group": SERVICE_USER} if os.geteuid() == 0 else {}
        with (self.data_dir / "server.log").open("ab") as log:
            return popen(argv, stdout=log, stderr=subprocess.STDOUT, **owner)

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Until the server takes connections (a first start replays nothing, a restart may replay its WAL)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.psql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    log = self.data_dir / "server.log"
                    raise RuntimeError(f"PostgreSQL not ready after {timeout:.0f}s; see {log}") from None
                time.sleep(0.2)

    def ensure_database(self, name: str) -> None:
        """`name`, created unless it exists (a database kept from an earlier run keeps its rows)."""
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip():
            self.psql(f'CREATE DATABASE "{name}"')

    def passfile(self, path: Path) -> Path:
        """A libpq password file (asyncpg reads it through PGPASSFILE): services get URLs without the password."""
        path.write_text(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        path.chmod(0o600)
        return path

    def url_without_password(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        secret = self.data_dir / "superuser.password"
        secret.write_text(self.password)
        secret.chmod(0o600)
        self._own(secret)
        initdb = self._as_owner(
            server_bin() / "initdb",
            "-D",
            self.cluster,
            "-U",
            SUPERUSER,
            "--pwfile",
            secret,
            "--auth",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
        )
        subprocess.run(initdb, check=True, capture_output=True)
        secret.unlink()

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, statement: str, *, database: str = "postgres") -> str:
        """One statement's output, unaligned (as the superuser); read from standard input, so that a password
        in it never shows in the process table."""
        host = "127.0.0.1" if self.listen in ("127.0.0.1", "*", "0.0.0.0") else self.listen
        argv = [str(server_bin() / "psql"), "-h", host, "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        env = {**os.environ, "PGPASSWORD": self.password}
        quiet = ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        done = subprocess.run([*argv, *quiet], input=statement.encode(), env=env, check=True, capture_output=True)
        return done.stdout.decode()

    def ensure_owner_role(self, database: str, password: str) -> None:
        """A login role named like `database`, its owner and the only one (besides the superuser) to connect:
        each service reaches its own database only."""
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{database}'").strip()
        verb = "ALTER" if exists else "CREATE"
        self.psql(f"{verb} ROLE \"{database}\" LOGIN PASSWORD '{password}'")
        self.psql(f'ALTER DATABASE "{database}" OWNER TO "{database}"')
        self.psql(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC')

    def stop(self) -> None:
        if (self.cluster / "postmaster.pid").exists():
            stop = self._as_owner(server_bin() / "pg_ctl", "-D", self.cluster, "-m", "fast", "-w", "stop")
            subprocess.run(stop, check=True, capture_output=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
