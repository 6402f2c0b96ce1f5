"""Throwaway PKI for the local site: certificate authorities and the certificates they issue.

The control plane gets a CA, the API server's serving certificate, an admin client certificate (group
system:masters) and the service-account signing key; the MQTT broker gets a serving certificate of its own CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ControlPlanePki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def new_authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue(
    authority: Authority,
    common_name: str,
    *,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    client: bool = False,
    organization: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving certificate (when names or addresses are given) or a client certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name, organization), authority.certificate.subject, key.public_key())
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
    )
    if server_names or server_ips:
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in server_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(authority.key, hashes.SHA256()), key


def loopback_server_pki(directory: Path, common_name: str) -> tuple[Path, Path, Path]:
    """A fresh CA and a serving certificate for localhost, 127.0.0.1 and ::1: (ca_file, cert_file, key_file)."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = new_authority(f"{common_name} CA")
    cert, key = issue(authority, common_name, server_names=LOOPBACK_NAMES, server_ips=LOOPBACK_IPS)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    write_cert(ca_file, authority.certificate)
    write_cert(cert_file, cert)
    write_key(key_file, key)
    return ca_file, cert_file, key_file


def create_pki(directory: Path, service_ips: list[str]) -> ControlPlanePki:
    """Write every key and certificate the control plane needs into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = new_authority("shopfloor-local-ca")
    serving_cert, serving_key = issue(
        authority,
        "kube-apiserver",
        server_names=(
            *LOOPBACK_NAMES,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        server_ips=(*LOOPBACK_IPS, *service_ips),
    )
    admin_cert, admin_key = issue(authority, "shopfloor-admin", client=True, organization="system:masters")
    service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki = ControlPlanePki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
    )
    write_cert(pki.ca_cert, authority.certificate)
    write_key(pki.ca_key, authority.key)
    write_cert(pki.serving_cert, serving_cert)
    write_key(pki.serving_key, serving_key)
    write_cert(pki.admin_cert, admin_cert)
    write_key(pki.admin_key, admin_key)
    write_key(pki.service_account_key, service_account_key)
    pki.service_account_pub.write_bytes(
        service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def opcua_application_certificate(
    application_uri: str, host_names: tuple[str, ...] = LOOPBACK_NAMES
) -> tuple[bytes, bytes]:
    """A self-signed OPC UA application instance certificate (PEM certificate, PEM key).

    OPC UA's RSA security policies (Basic256Sha256, Aes*_Sha256_*) need an RSA key and the application URI in the
    subject alternative name; both server and client applications use one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(application_uri.rsplit(":", 1)[-1], "Shopfloor")
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in host_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def load_authority(pki: ControlPlanePki) -> Authority:
    """The control plane's CA, read back from its files (to issue certificates for parts that join later)."""
    certificate = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the control plane CA key is not an EC key")
    return Authority(certificate, key)


def issue_node_client(pki: ControlPlanePki, node_name: str, directory: Path) -> tuple[Path, Path]:
    """A kubelet's client certificate: user system:node:<name> in group system:nodes, what the Node authorizer
    expects. Returns (certificate file, key file)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = issue(load_authority(pki), f"system:node:{node_name}", client=True, organization="system:nodes")
    cert_file, key_file = directory / f"{node_name}.crt", directory / f"{node_name}.key"
    write_cert(cert_file, cert)
    write_key(key_file, key)
    return cert_file, key_file
