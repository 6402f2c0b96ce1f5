"""OPC UA security policies as the API names them (`Basic256Sha256_SignAndEncrypt`, ...), in asyncua's terms.

Shared by the vPLC runtime and the bridge. The deprecated Basic128Rsa15 and Basic256 are deliberately absent.
"""

from __future__ import annotations

from asyncua import ua

SECURITY_POLICIES: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128_Sha256_RsaOaep_Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128_Sha256_RsaOaep_SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    "Aes256_Sha256_RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256_Sha256_RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}


def security_policies(names: list[str]) -> list[ua.SecurityPolicyType]:
    """asyncua's policies for the API's names; an unknown name is a ValueError naming it."""
    unknown = [name for name in names if name not in SECURITY_POLICIES]
    if unknown:
        raise ValueError(f"io.opcua.securityPolicies: unsupported {', '.join(unknown)}")
    return [SECURITY_POLICIES[name] for name in names]
