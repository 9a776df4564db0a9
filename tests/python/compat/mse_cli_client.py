"""Provision an mse-enclave with the ORIGINAL client library (PyPI mse-cli 1.3), as `mse cloud
deploy` did: fetch and RA-TLS-check the certificate, wait for the configuration server, send the
payload built by ConfigurationPayload pinned to that certificate, wait for the app.

Usage: python mse_cli_client.py URL APP_ID CODE_KEY_HEX MR_ENCLAVE_HEX CERT_OUT
Prints the app's /whoami answer on success.
"""
import sys
from pathlib import Path
from uuid import UUID

import requests
from intel_sgx_ra.ratls import get_server_certificate, ratls_verify
from mse_cli.core.bootstrap import (
    ConfigurationPayload,
    configure_app,
    is_ready,
    is_waiting_for_secrets,
    wait_for_app_server,
    wait_for_conf_server,
)
from mse_cli.core.clock_tick import ClockTick
from mse_lib_crypto.seal_box import seal

url, app_id, code_key, mr_enclave, cert_out = sys.argv[1:6]
port = int(url.rsplit(":", 1)[1])

# The original fetched the certificate without verification, then checked it (RA-TLS key
# binding and the expected MRENCLAVE) before trusting it as the only CA.
pem = get_server_certificate(("127.0.0.1", port))
quote = ratls_verify(pem)
assert quote.report_body.mr_enclave.hex() == mr_enclave, "MRENCLAVE mismatch"
enclave_pk = quote.report_body.report_data[32:64]
Path(cert_out).write_text(pem)

wait_for_conf_server(ClockTick(period=1, timeout=60, message="conf server"), url, cert_out)
assert is_waiting_for_secrets(url, cert_out)
assert not is_ready(url, "/whoami", cert_out)

payload = ConfigurationPayload(
    app_id=UUID(app_id),
    secrets={"login": "compat-user"},
    sealed_secrets=seal(b'{"api_token": "s3cr3t"}', enclave_pk),
    code_secret_key=bytes.fromhex(code_key),
    ssl_private_key=None,
)
configure_app(url, payload.payload(), verify=cert_out)
wait_for_app_server(ClockTick(period=1, timeout=60, message="app"), url, "/whoami", cert_out)
assert is_ready(url, "/whoami", cert_out)
assert not is_waiting_for_secrets(url, cert_out)
print(requests.get(f"{url}/whoami", verify=cert_out, timeout=10).text)
