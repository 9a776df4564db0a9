"""Sealed boxes interoperate both ways with PyNaCl and mse-lib-crypto's seal_box."""

import nacl.public
from mse_lib_crypto import seal_box


def test_pynacl_sealed_box_opens_with_ours(tmp_path, mse):
    sk = nacl.public.PrivateKey.generate()
    secret = b'{"code_secret_key": "' + b"ab" * 32 + b'"}'
    (tmp_path / "sealed").write_bytes(nacl.public.SealedBox(sk.public_key).encrypt(secret))
    (tmp_path / "sk").write_bytes(bytes(sk))
    r = mse("unseal", "--input", tmp_path / "sealed", "--private-key", tmp_path / "sk",
            "--output", tmp_path / "plain")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "plain").read_bytes() == secret


def test_ours_opens_with_pynacl_and_mse_lib_crypto(tmp_path, mse):
    sk = nacl.public.PrivateKey.generate()
    (tmp_path / "pk").write_text(bytes(sk.public_key).hex() + "\n")
    (tmp_path / "msg").write_bytes(b"top secret \x00\xff")
    r = mse("seal", "--input", tmp_path / "msg", "--receiver-public-key", tmp_path / "pk",
            "--output", tmp_path / "sealed")
    assert r.returncode == 0, r.stderr
    sealed = (tmp_path / "sealed").read_bytes()
    assert len(sealed) == 48 + 13
    assert nacl.public.SealedBox(sk).decrypt(sealed) == b"top secret \x00\xff"
    assert seal_box.unseal(sealed, bytes(sk)) == b"top secret \x00\xff"


def test_mse_lib_crypto_seal_opens_with_ours_and_wrong_key_fails(tmp_path, mse):
    sk = nacl.public.PrivateKey.generate()
    (tmp_path / "sealed").write_bytes(seal_box.seal(b"hello", bytes(sk.public_key)))
    (tmp_path / "sk").write_bytes(bytes(sk))
    r = mse("unseal", "--input", tmp_path / "sealed", "--private-key", tmp_path / "sk")
    assert (r.returncode, r.stdout) == (0, "hello")
    (tmp_path / "other").write_bytes(bytes(nacl.public.PrivateKey.generate()))
    r = mse("unseal", "--input", tmp_path / "sealed", "--private-key", tmp_path / "other")
    assert r.returncode == 1
    assert r.stderr == (
        f"Error: cannot unseal {tmp_path / 'sealed'}: sealed box does not open with this key "
        "(modified, or sealed for another recipient)\n"
    )
