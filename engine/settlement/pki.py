"""The settlement API's PKI: the engine's CA, the server certificate, and per-bank client
certificates and request-signing secrets (X.509 with ``cryptography``, ECDSA P-256).

Layout under ``folder`` (default ``ONECARD_HOME/pki``), every private key and secret file
mode 0600 and never in the database, logs or messages::

    ca.pem  ca.key                        the engine's CA (self-signed, 10 years)
    server.pem  server.key                the API's TLS certificate (SAN: the host names)
    banks/<CODE>/client.pem client.key    the bank's client certificate (CN = bank code)
    banks/<CODE>/signing.key              32 random bytes: the bank's HMAC request key
    banks/<CODE>/ca.pem                   a copy of the CA certificate for the bank

A bank's identity is the common name of a client certificate the CA issued; the API also
requires that the signed request's key id equals it (:mod:`engine.api.banks`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.settlement.errors import ParticipantError, UnknownParticipantError
from engine.settlement.registry import BANK_CODE_PATTERN

CA_DAYS = 3650
LEAF_DAYS = 825
SIGNING_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class BankCredentials:
    """What a bank needs to call the settlement API: paths of its certificate, key, the CA
    certificate, and its signing secret file (the secret itself is not held here)."""

    bank_code: str
    certificate: Path
    private_key: Path
    ca_certificate: Path
    signing_key: Path


class Pki:
    """The CA and the certificates in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Pki({str(self.folder)!r})"

    @property
    def ca_certificate(self) -> Path:
        return self.folder / "ca.pem"

    def ensure_ca(self, common_name: str = "onecard settlement CA") -> Path:
        """Create the CA if there is none; return its certificate path."""
        if self.ca_certificate.exists():
            return self.ca_certificate
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.timezone.utc)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_private(self.folder / "ca.key", _key_pem(key))
        self.ca_certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return self.ca_certificate

    def issue_server(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
        """Issue (or replace) the API's server certificate for ``hosts``; return (cert, key) paths."""
        assert hosts, "a server certificate names at least one host"
        names = [x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts]
        return self._issue(self.folder / "server", hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_bank(self, bank_code: str) -> BankCredentials:
        """Issue ``bank_code`` a client certificate (CN = bank code) and a fresh signing
        secret (replacing earlier ones: re-issuing is how a bank's credentials are rotated).

        Raises
        ------
        ParticipantError
            ``bank_code`` is not 2-16 characters of ``[A-Z0-9]``.
        """
        if not BANK_CODE_PATTERN.match(bank_code or ""):
            raise ParticipantError(f"bank_code {bank_code!r}: must be 2-16 characters of [A-Z0-9]")
        folder = self.folder / "banks" / bank_code
        folder.mkdir(parents=True, exist_ok=True)
        certificate, private_key = self._issue(folder / "client", bank_code, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        _write_private(folder / "signing.key", secrets.token_bytes(SIGNING_KEY_BYTES))
        (folder / "ca.pem").write_bytes(self.ca_certificate.read_bytes())
        return self.bank(bank_code)

    def bank(self, bank_code: str) -> BankCredentials:
        """The credential paths of ``bank_code``.

        Raises
        ------
        UnknownParticipantError
            No credentials were issued to that bank.
        """
        folder = self.folder / "banks" / bank_code
        if not BANK_CODE_PATTERN.match(bank_code or "") or not (folder / "signing.key").exists():
            raise UnknownParticipantError(f"bank_code {bank_code!r}: no credentials issued (onecard banks issue-cert)")
        return BankCredentials(bank_code, folder / "client.pem", folder / "client.key", folder / "ca.pem",
                               folder / "signing.key")

    def signing_keys(self) -> dict[str, bytes]:
        """Every bank's signing secret, by bank code (for :class:`adapters.signing.Verifier`)."""
        banks = self.folder / "banks"
        if not banks.is_dir():
            return {}
        return {path.parent.name: path.read_bytes() for path in sorted(banks.glob("*/signing.key"))}

    def engine_signing_key(self) -> bytes:
        """The engine's own HMAC key (key id ``ONECARD``) for requests it sends to banks;
        created on first use in ``engine/signing.key``. Banks are given it out of band."""
        path = self.folder / "engine" / "signing.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_private(path, secrets.token_bytes(SIGNING_KEY_BYTES))
        return path.read_bytes()

    def engine_client_context(self) -> ssl.SSLContext:
        """A TLS client context for pushing to banks: the system's trusted CAs, and the
        engine's own client certificate (CN ``ONECARD``, issued on first use)."""
        stem = self.folder / "engine" / "client"
        if not stem.with_suffix(".pem").exists():
            stem.parent.mkdir(parents=True, exist_ok=True)
            self._issue(stem, "ONECARD", ExtendedKeyUsageOID.CLIENT_AUTH, [])
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_cert_chain(stem.with_suffix(".pem"), stem.with_suffix(".key"))
        return context

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context that requires a client certificate issued by this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_certificate))
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.folder / "server.pem", self.folder / "server.key")
        return context

    def _issue(self, stem: Path, common_name: str, usage, names: list) -> tuple[Path, Path]:
        ca_key = serialization.load_pem_private_key((self.folder / "ca.key").read_bytes(), password=None)
        ca = x509.load_pem_x509_certificate(self.ca_certificate.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        certificate_path, key_path = stem.with_suffix(".pem"), stem.with_suffix(".key")
        _write_private(key_path, _key_pem(key))
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return certificate_path, key_path


def client_context(credentials: BankCredentials) -> ssl.SSLContext:
    """A TLS client context for a bank: trusts the engine's CA, presents the bank's certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(credentials.ca_certificate))
    context.load_cert_chain(credentials.certificate, credentials.private_key)
    return context


def peer_common_name(peercert: dict | None) -> str:
    """The subject common name of a verified peer certificate (``SSLSocket.getpeercert()``), or "".

    >>> peer_common_name({"subject": ((("commonName", "ICBC"),),)})
    'ICBC'
    >>> peer_common_name(None)
    ''
    """
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start, so the secret is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
