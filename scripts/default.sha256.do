# NAME.sha256: the SHA-256 of NAME in hex (NAME.list.sha256 is the seed's
# layer id, stable across rebuilds).
redo-ifchange "$2"
if command -v sha256sum >/dev/null 2>&1; then
	sum=$(sha256sum <"$2")
elif command -v shasum >/dev/null 2>&1; then
	sum=$(shasum -a 256 <"$2")
else
	sum=$(openssl dgst -sha256 -r <"$2")
fi
echo "${sum%% *}"
