/**
 * Fixed ECDSA P-256 test certificates, made once with openssl: a self-signed CA
 * (`openssl ecparam -name prime256v1 -genkey | openssl pkey`, `openssl req -x509 -days 36500 -sha256`,
 * no subjectAltName) and a leaf it signed (`openssl x509 -req -CA`). The TLS tests load them where a
 * certificate that is not self-signed, or an EC key beside the generated RSA one, is needed.
 */
export const CA_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOQio3Wgf3Tw2UE72
mkYHpR/hD+qjEI+dxZyiHOjxC0WhRANCAARV07QZWSzu1j0ZHOySNaxTR8i9hoxm
dxPq2Yy1Sp/WD+BkT7Pr5DkF80IipOpJpFshkB1VDklZtZ6c+NtxvxcO
-----END PRIVATE KEY-----
`
export const CA_CERT = `-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUUKjWou7uyAhJV92EjumMgzedq78wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUY2xiLXByb3h5IHRlc3QgRUNEU0EwIBcNMjYxMjAxMjM0ODE5
WhgPMjEyNjExMDcyMzQ4MTlaMB8xHTAbBgNVBAMMFGNsYi1wcm94eSB0ZXN0IEVD
RFNBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVdO0GVks7tY9GRzskjWsU0fI
vYaMZncT6tmMtUqf1g/gZE+z6+Q5BfNCIqTqSaRbIZAdVQ5JWbWenPjbcb8XDqNT
MFEwHQYDVR0OBBYEFFZGn9r54W25Rz5YDoCwHu514+oyMB8GA1UdIwQYMBaAFFZG
n9r54W25Rz5YDoCwHu514+oyMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SAAwRQIgf1h/ZYwuMyXNI/enGmEnQ5LZ9TUTHXQGtyeohFPQ3twCIQDLjiC1eqD8
hPsDkRD2wYeKTnfEdcaB/r7x0zKaow96WQ==
-----END CERTIFICATE-----
`
export const LEAF_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdW++JiQmwfvIbOy+
+v/mhl6OYMaEXl7x+RC6YSeU+/uhRANCAAQLdRiBJY20j+s98J8V5xLE2riPqlU0
WA3Hkdr3t8JnntuJqL+Uy/Nw0M0QCqGeQdzZZmc27k7xY0smgcYqWozR
-----END PRIVATE KEY-----
`
export const LEAF_CERT = `-----BEGIN CERTIFICATE-----
MIIBOjCB4AIUL1FeRCFk2c/DQX0HybzlidKahK0wCgYIKoZIzj0EAwIwHzEdMBsG
A1UEAwwUY2xiLXByb3h5IHRlc3QgRUNEU0EwIBcNMjYxMjAxMjM0ODE5WhgPMjEy
NjExMDcyMzQ4MTlaMB4xHDAaBgNVBAMME2NsYi1wcm94eSB0ZXN0IGxlYWYwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAAQLdRiBJY20j+s98J8V5xLE2riPqlU0WA3H
kdr3t8JnntuJqL+Uy/Nw0M0QCqGeQdzZZmc27k7xY0smgcYqWozRMAoGCCqGSM49
BAMCA0kAMEYCIQDfkwRTb51wvAjejnULid7vQwvMHd6ZB2kDaCq2eBk4ggIhAIEC
rcb6SpmWAmiZygG1KZG/N6tO37K/ttDR0ldDtG77
-----END CERTIFICATE-----
`
