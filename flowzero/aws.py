"""AWS access for every downloader, resolved once and the way the AWS tools do: credentials, region, endpoint, TLS.

Credentials come from botocore's own chain, in its order: environment variables; the profile (``AWS_PROFILE`` or
``s3.profile``) in the shared credentials and config files (``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_CONFIG_FILE``)
with keys, ``credential_process``, SSO (cached token) or ``role_arn`` + ``source_profile``; web identity
(``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``); ECS container credentials; EC2 instance metadata (IMDSv2).
flowzero never re-implements that chain: threads and s5cmd get a botocore session, the Rust core gets a
provider (a callable it asks again shortly before temporary credentials expire).

When the only credentials are the key variables and no profile or config file is involved, the environment is
read directly (the chain's first step), so the ``fast`` downloader does not pay botocore's import.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from flowzero.errors import TransferError
from flowzero.redact import add_secret, redact

DEFAULT_REGION = "us-west-2"  # flowzero's default (config.yaml s3.region)
CREDENTIALS_HINT = "set AWS_PROFILE (or s3.profile in config.yaml), or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"

# (access key, secret key, session token, expiry as unix seconds): what the Rust core's provider returns.
CredentialTuple = tuple[str, str, Optional[str], Optional[float]]


class CredentialsError(TransferError):
    """No AWS credentials were found, or the chain could not produce them; one line, never a secret."""


@dataclass
class AwsAccess:
    """Where and as whom S3 requests go. ``session`` is None on the environment-only shortcut."""

    region: str
    endpoint_url: str = ""
    ca_bundle: Optional[str] = None
    profile: str = ""
    session: Any = field(default=None, repr=False)
    _credentials: Any = field(default=None, repr=False)

    def credentials(self) -> Any:
        """botocore credentials (refreshable where temporary); CredentialsError if there are none."""
        if self._credentials is None:
            self._credentials = _resolve_credentials(self)
        return self._credentials

    def current(self) -> CredentialTuple:
        """The credentials to sign with now (botocore refreshes temporary ones before they expire)."""
        creds = self.credentials()
        if isinstance(creds, tuple):
            return creds
        frozen = creds.get_frozen_credentials()
        for secret in (frozen.secret_key, frozen.token, frozen.access_key):
            add_secret(secret)
        expiry = getattr(creds, "_expiry_time", None)  # botocore keeps it private; None for long-term keys
        return frozen.access_key, frozen.secret_key, frozen.token or None, expiry.timestamp() if expiry else None

    def provider(self) -> Callable[[], CredentialTuple]:
        """For the Rust core: a callable it calls at the start and again shortly before expiry."""
        self.credentials()  # no credentials: fail here, with the same line as every downloader
        return self.current

    def subprocess_env(self) -> dict[str, str]:
        """Variables that give a child process (s5cmd) the same credentials, region, endpoint and CA bundle."""
        access_key, secret_key, token, _ = self.current()
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
               "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if token:
            env["AWS_SESSION_TOKEN"] = token
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = self.ca_bundle
        return env

    def boto3_session(self) -> Any:
        """A boto3 session over the same botocore session (profile, roles, refresh)."""
        import boto3

        self.credentials()
        if self.session is None:
            access_key, secret_key, token, _ = self.current()
            return boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                         aws_session_token=token, region_name=self.region)
        return boto3.session.Session(botocore_session=self.session, region_name=self.region)


def resolve(region: str = "", endpoint_url: str = "", profile: str = "",
            env: Mapping[str, str] | None = None) -> AwsAccess:
    """The AWS access of a run: flowzero's settings first, then what the AWS tools would use."""
    env = os.environ if env is None else env
    profile = profile or env.get("AWS_PROFILE", "")
    endpoint_url = endpoint_url or env.get("AWS_ENDPOINT_URL_S3", "") or env.get("AWS_ENDPOINT_URL", "")
    if _environment_only(profile, env):
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        keys = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None, None)
        return AwsAccess(region, endpoint_url, ca_bundle(env=env), profile, None, keys)
    session = _session(profile)
    try:
        scoped = session.get_scoped_config()
    except Exception as exc:  # botocore.exceptions.ProfileNotFound and broken config files
        raise CredentialsError(f"AWS profile '{profile or 'default'}' cannot be used: {redact(str(exc))}",
                                  hint=CREDENTIALS_HINT) from None
    region = region or env.get("AWS_REGION") or session.get_config_variable("region") or DEFAULT_REGION
    endpoint_url = endpoint_url or _profile_endpoint(session, scoped)
    return AwsAccess(region, endpoint_url, ca_bundle(session.get_config_variable("ca_bundle"), env), profile,
                     session)


def ca_bundle(profile_bundle: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The PEM bundle to trust instead of the system's CA store: AWS_CA_BUNDLE, the profile's ``ca_bundle``,
    else SSL_CERT_FILE; None means the system's store. The one answer for httpx, boto3, s5cmd and the Rust core."""
    env = os.environ if env is None else env
    return env.get("AWS_CA_BUNDLE") or profile_bundle or env.get("SSL_CERT_FILE") or None


def httpx_verify(env: Mapping[str, str] | None = None) -> ssl.SSLContext | bool:
    """``verify=`` for httpx: only the bundle of :func:`ca_bundle` where there is one, else httpx's default."""
    bundle = ca_bundle(env=env)
    return ssl.create_default_context(cafile=bundle) if bundle else True


def sources_tried(profile: str = "", env: Mapping[str, str] | None = None) -> str:
    """The credential sources the chain looked at, as one line (names and paths, never values)."""
    env = os.environ if env is None else env
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    config = env.get("AWS_CONFIG_FILE") or "~/.aws/config"
    imds = "EC2 instance metadata"
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        imds += " (disabled)"
    return ", ".join([
        "environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        f"profile '{profile or env.get('AWS_PROFILE') or 'default'}' in {shared} and {config} "
        "(keys, credential_process, SSO, role_arn)",
        "web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)",
        "ECS container credentials",
        imds,
    ])


def no_credentials_error(profile: str = "") -> CredentialsError:
    """The one line every downloader says when there are no credentials."""
    return CredentialsError(f"no AWS credentials found for S3 (tried: {sources_tried(profile)})",
                               hint=CREDENTIALS_HINT)


def _environment_only(profile: str, env: Mapping[str, str]) -> bool:
    """Keys in the environment and nothing a profile or config file could add (region, endpoint, CA)."""
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")) or profile:
        return False
    config = env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    return not os.path.exists(config)


def _session(profile: str) -> Any:
    import botocore.session

    session = botocore.session.Session(profile=profile or None)
    session.user_agent_name = "flowzero"
    return session


def _profile_endpoint(session: Any, scoped: Mapping[str, Any]) -> str:
    """The profile's S3 endpoint as the AWS CLI reads it: its ``services`` section's s3 ``endpoint_url``, else its
    own ``endpoint_url``."""
    services = scoped.get("services")
    if services:
        section = session.full_config.get("services", {}).get(services, {})
        s3 = section.get("s3", {}) if isinstance(section, dict) else {}
        if isinstance(s3, dict) and s3.get("endpoint_url"):
            return str(s3["endpoint_url"])
    return str(scoped.get("endpoint_url") or "")


def _resolve_credentials(access: AwsAccess) -> Any:
    try:
        creds = access.session.get_credentials()
    except Exception as exc:  # a source that exists but failed: credential_process, AssumeRole, SSO, IMDS
        raise CredentialsError(f"cannot get AWS credentials ({type(exc).__name__}): {redact(str(exc))}",
                                  hint=CREDENTIALS_HINT) from None
    if creds is None:
        raise no_credentials_error(access.profile)
    return creds
