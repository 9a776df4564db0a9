"""Every route of the app. Over HTTPS, requests trusts the CA bundle in REQUESTS_CA_BUNDLE
(`mse test` points it at the enclave certificate it verified)."""

import requests

TIMEOUT = 10


def test_health(url):
    assert requests.get(f"{url}/health", timeout=TIMEOUT).status_code == 200


def test_hello(url):
    response = requests.get(f"{url}/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == "Hello world"


def test_whoami(url, secrets):
    response = requests.get(f"{url}/whoami", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == secrets["login"]


def test_date_write_then_read(url):
    # Reading consumes the file, so a first read clears what an earlier run left.
    requests.get(f"{url}/date", timeout=TIMEOUT)
    response = requests.get(f"{url}/date", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.text == "You should write before read"

    assert requests.post(f"{url}/date", timeout=TIMEOUT).status_code == 200
    response = requests.get(f"{url}/date", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text.startswith("20")

    assert requests.get(f"{url}/date", timeout=TIMEOUT).status_code == 404
