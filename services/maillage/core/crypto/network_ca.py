"""The network CA: the certificates every service and broker presents for TLS, and the one certificate that
every client of the network trusts.

`maillage keys init` creates the CA (or takes an operator's: `--ca-cert`/`--ca-key`) and a certificate per
service that has none: the CA's private key stays in the private folder of the machine that issues; each
service needs only its own key and certificate, and everyone the CA's certificate (`keys/public/tls/network-ca.pem`,
the network file's `ca_file`). Keys are ECDSA P-256: every TLS stack in the path (OpenSSL for Python, the
JDK for Kafka) speaks it, and a handshake costs a fraction of RSA's.

A broker reads its key from a PKCS#12 file with a password (Kafka's PEM key store wants the key encrypted
too, in a form older JDKs cannot all read); the password sits beside it, 0600.
"""

from __future__ import annotations

import ipaddress
import secrets
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    pkcs12,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from maillage.core.crypto.keys import write_private

CA_NAME = "network-ca"  # not a service's name: agency ids are lowercase words joined by hyphens too
CA_YEARS = 10
LEAF_DAYS = 825  # the longest lifetime browsers accept for a server certificate
# Every service and broker answers on the loopback too: health checks and a single machine's deployment.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class CaError(ValueError):
    """A CA given by an operator that cannot issue (unreadable, or its key does not match its certificate)."""


@dataclass(frozen=True)
class TlsDirs:
    """`private/tls`: the CA's key, each service's key (and a broker's key store); `public/tls`: certificates."""

    private: Path
    public: Path

    @classmethod
    def under(cls, private_keys: Path, public_keys: Path) -> TlsDirs:
        return cls(private=private_keys / "tls", public=public_keys / "tls")

    @property
    def ca_cert(self) -> Path:
        return self.public / f"{CA_NAME}.pem"

    @property
    def ca_key(self) -> Path:
        return self.private / f"{CA_NAME}.key"

    def cert(self, name: str) -> Path:
        return self.public / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.private / f"{name}.key"

    def key_store(self, name: str) -> Path:
        return self.private / f"{name}.p12"

    def key_store_password(self, name: str) -> Path:
        return self.private / f"{name}.p12.password"


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """What a client of the network trusts: the system's CAs (a service behind a public certificate) and the
    network CA's certificate, if the network file names it."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Maillage network"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return alt


def ensure_ca(dirs: TlsDirs, *, now: datetime | None = None) -> bool:
    """The network CA, created once; true if created now."""
    if dirs.ca_cert.exists():
        return False
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name("Maillage network CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(dirs.ca_key, _key_pem(key))
    dirs.public.mkdir(parents=True, exist_ok=True)
    dirs.ca_cert.write_bytes(cert.public_bytes(Encoding.PEM))
    return True


def adopt_ca(dirs: TlsDirs, *, cert_file: Path, key_file: Path) -> None:
    """An operator's CA, copied in (its key only where certificates are issued): refused unless the key is the
    certificate's and the certificate may sign others."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CaError(f"cannot read the CA: {exc}") from None
    if key.public_key() != cert.public_key():
        raise CaError("the CA's key does not belong to its certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError("the certificate given is not a CA's (basicConstraints CA:TRUE)")
    write_private(dirs.ca_key, key_file.read_bytes())
    dirs.public.mkdir(parents=True, exist_ok=True)
    dirs.ca_cert.write_bytes(cert.public_bytes(Encoding.PEM))


def _load_ca(dirs: TlsDirs) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    if not dirs.ca_key.exists():
        raise CaError(f"no CA key here ({dirs.ca_key}): certificates are issued where the network CA is")
    ca_cert = x509.load_pem_x509_certificate(dirs.ca_cert.read_bytes())
    ca_key = load_pem_private_key(dirs.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError("the CA's key cannot sign certificates")
    return ca_cert, ca_key


def _leaf(
    dirs: TlsDirs, name: str, public_key: ec.EllipticCurvePublicKey, hosts: Iterable[str], now: datetime
) -> bytes:
    """The chain a server presents for `name`: its certificate (its own names and the loopback only), then the
    CA's (a client that trusts only the CA needs both)."""
    ca_cert, ca_key = _load_ca(dirs)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_alt_names([*hosts, name, *LOOPBACK_NAMES])), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM) + ca_cert.public_bytes(Encoding.PEM)


def issue(dirs: TlsDirs, name: str, hosts: Iterable[str], *, now: datetime | None = None) -> bool:
    """A key and a certificate for `name`, valid for `hosts` (names or addresses) and the loopback, signed by
    the CA, and a PKCS#12 key store of both; true if issued now (an existing one is kept: reissue by deleting
    it)."""
    if all(p.exists() for p in (dirs.cert(name), dirs.key(name), dirs.key_store(name), dirs.key_store_password(name))):
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    chain = _leaf(dirs, name, key.public_key(), hosts, now or datetime.now(UTC))
    write_private(dirs.key(name), _key_pem(key))
    dirs.public.mkdir(parents=True, exist_ok=True)
    dirs.cert(name).write_bytes(chain)
    cert, ca_cert = x509.load_pem_x509_certificates(chain)
    password = secrets.token_urlsafe(24)
    store = pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, [ca_cert], BestAvailableEncryption(password.encode())
    )
    write_private(dirs.key_store(name), store)
    write_private(dirs.key_store_password(name), password.encode())
    return True


def request(dirs: TlsDirs, name: str) -> Path:
    """On a service's own machine: its TLS key (made there, never sent) and a certificate signing request for
    the network's operator (`maillage keys sign`); the request's path. An existing key is kept."""
    if not dirs.key(name).exists():
        write_private(dirs.key(name), _key_pem(ec.generate_private_key(ec.SECP256R1())))
    key = load_pem_private_key(dirs.key(name).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{dirs.key(name)} is not an ECDSA key")
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(name)).sign(key, hashes.SHA256())
    dirs.public.mkdir(parents=True, exist_ok=True)
    path = dirs.public / f"{name}.csr"
    path.write_bytes(csr.public_bytes(Encoding.PEM))
    return path


def sign_request(
    dirs: TlsDirs, csr_pem: bytes, hosts: Mapping[str, Iterable[str]], *, now: datetime | None = None
) -> tuple[str, bytes]:
    """On the operator's machine: the certificate chain for a service's request, named as the request says
    if that is a name of `hosts` (the network's services), valid for the names the *network file* gives it —
    never those the request asks for."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CaError("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CaError("the request's signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else ""
    if name not in hosts:
        raise CaError(f"the request names {name!r}, which is not a service of this network")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CaError("the request's key is not ECDSA")
    return name, _leaf(dirs, name, public_key, hosts[name], now or datetime.now(UTC))


def ensure_tls(dirs: TlsDirs, hosts: Mapping[str, Iterable[str]], *, ca: tuple[Path, Path] | None = None) -> list[str]:
    """The CA (created, or the operator's `ca` = (certificate, key) adopted) and a certificate for each name
    of `hosts`, valid for its own hosts only (and the loopback); the names issued now."""
    if ca is not None:
        if dirs.ca_cert.exists():
            raise CaError(f"a CA is already there ({dirs.ca_cert}): remove it first to use another")
        adopt_ca(dirs, cert_file=ca[0], key_file=ca[1])
    ensure_ca(dirs)
    return [name for name, names in hosts.items() if issue(dirs, name, names)]
