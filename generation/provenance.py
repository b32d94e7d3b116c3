"""C2PA provenance: every MP4 Riff makes carries a manifest signed with the platform's key.

The manifest says the video was created by a trained algorithm (IPTC digital source type
`trainedAlgorithmicMedia`) and carries a `riff.generation` assertion with the video and
generation ids, the model and the creator's handle. The signature covers a BMFF hash of the
file, so changing a byte of the media afterwards invalidates it.

Keys: `RIFF_C2PA_CERT_PATH` (PEM chain, signer first) and `RIFF_C2PA_KEY_PATH` (PEM PKCS#8),
ES256. Without them, a development CA and signer are created once under
`<RIFF_DATA_DIR>/c2pa/` (docs/provenance.md). No time-stamping authority is used (none is
reachable here); manifests are valid for the signer certificate's lifetime.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLAIM_GENERATOR = {"name": "Riff", "version": "0.1.0"}
SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RIFF_LABEL = "riff.generation"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class SignerConfig:
    cert_chain_pem: bytes  # signer certificate first, then its issuers
    key_pem: bytes
    alg: str = "es256"

    @property
    def signer_serial(self) -> str:
        from cryptography import x509

        return str(x509.load_pem_x509_certificate(self.cert_chain_pem).serial_number)


def _dev_credentials(directory: Path) -> tuple[Path, Path]:
    """Creates (once) a development CA and an ES256 signing certificate it issued."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path, key_path = directory / "signer-chain.pem", directory / "signer-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Riff"),
            ]
        )

    def usage(**flags: bool) -> x509.KeyUsage:
        names = [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ]
        return x509.KeyUsage(**{n: flags.get(n, False) for n in names})

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Riff Development CA"))
        .issuer_name(name("Riff Development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # C2PA requires digitalSignature and one of its allowed EKUs (emailProtection here).
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("Riff Development Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_bytes = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Write the key first with 0600, then the chain: a half-written pair is regenerated.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    return cert_path, key_path


def load_signer(
    *,
    cert_path: str | Path | None = None,
    key_path: str | Path | None = None,
    dev_dir: str | Path | None = None,
) -> SignerConfig:
    if not (cert_path and key_path):
        if dev_dir is None:
            raise ValueError("give cert_path and key_path, or dev_dir for development credentials")
        with _LOCK:
            cert_path, key_path = _dev_credentials(Path(dev_dir))
    return SignerConfig(Path(cert_path).read_bytes(), Path(key_path).read_bytes())


def default_signer() -> SignerConfig:
    """The platform signer from settings (development credentials when none are configured)."""
    from django.conf import settings

    return load_signer(
        cert_path=settings.RIFF_C2PA_CERT_PATH,
        key_path=settings.RIFF_C2PA_KEY_PATH,
        dev_dir=Path(settings.DATA_DIR) / "c2pa",
    )


def sign_mp4(
    mp4: bytes, *, assertion: dict[str, Any], signer: SignerConfig, title: str = "Riff video"
) -> bytes:
    """Embeds a signed manifest; returns the new MP4 bytes."""
    import c2pa

    manifest = {
        "claim_generator_info": [CLAIM_GENERATOR],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": SOURCE_TYPE}]},
            },
            {"label": RIFF_LABEL, "data": assertion},
        ],
    }
    info = c2pa.C2paSignerInfo(signer.alg.encode(), signer.cert_chain_pem, signer.key_pem, None)
    with (
        c2pa.Signer.from_info(info) as native_signer,
        c2pa.Builder(json.dumps(manifest)) as builder,
    ):
        out = io.BytesIO()
        builder.sign(native_signer, "video/mp4", io.BytesIO(mp4), out)
        return out.getvalue()


@dataclass
class VerifyResult:
    has_manifest: bool
    valid: bool = False
    trusted: bool = False
    issuer: str | None = None
    common_name: str | None = None
    serial: str | None = None
    riff: dict | None = None
    validation_errors: list[str] = field(default_factory=list)


# Reported by every manifest signed by a CA outside the public C2PA trust list, ours included;
# whether it is *our* signer is decided separately (`trusted`).
_EXPECTED_UNTRUSTED = {"signingCredential.untrusted"}


def verify_media(
    data: bytes, mime: str = "video/mp4", *, signer: SignerConfig | None = None
) -> VerifyResult:
    """Reads and validates a manifest. Never raises for bad input: garbage has no manifest.

    `valid`: the signature and the hash bindings verify. `trusted`: in addition, it was signed
    with our signing certificate (same serial as `signer`, by default the platform's).
    """
    import c2pa

    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data))
    except Exception:
        return VerifyResult(has_manifest=False, validation_errors=["unreadable"])
    if reader is None:
        return VerifyResult(has_manifest=False)
    with reader:
        try:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        except Exception as exc:
            return VerifyResult(
                has_manifest=True, validation_errors=[f"unreadable:{exc.__class__.__name__}"]
            )
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    failures = [
        f.get("code", "?")
        for f in (store.get("validation_results") or {})
        .get("activeManifest", {})
        .get("failure", [])
    ]
    errors = [code for code in failures if code not in _EXPECTED_UNTRUSTED]
    sig = active.get("signature_info") or {}
    riff = next(
        (a.get("data") for a in active.get("assertions", []) if a.get("label") == RIFF_LABEL), None
    )
    valid = state in ("Valid", "Trusted") and not errors
    if signer is None:
        try:
            signer = default_signer()
        except Exception:
            signer = None
    serial = sig.get("cert_serial_number")
    trusted = bool(valid and signer is not None and serial == signer.signer_serial)
    return VerifyResult(
        has_manifest=True,
        valid=valid,
        trusted=trusted,
        issuer=sig.get("issuer"),
        common_name=sig.get("common_name"),
        serial=serial,
        riff=riff,
        validation_errors=errors,
    )
