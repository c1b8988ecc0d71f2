# Sourced by the bench scripts: make_chain DIR SAN writes DIR/ca.pem, DIR/leaf.pem, DIR/leaf.key
# and DIR/chain.pem (leaf, then CA), both ECDSA P-256, the leaf named by SAN
# ("DNS:bench.test,DNS:www.bench.test"): about the size of a public CA's leaf and intermediate,
# and a chain rustls clients verify (a self-signed leaf is refused as a CA used as end entity).
make_chain() {
  local dir=$1 san=$2
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.test \
    -keyout "$dir/leaf.key" -out "$dir/leaf.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$san" > "$dir/ext"
  openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/ext" -out "$dir/leaf.pem" 2>/dev/null
  cat "$dir/leaf.pem" "$dir/ca.pem" > "$dir/chain.pem"
  chmod 600 "$dir/leaf.key"
}
