#include "api/auth.hpp"

#include <openssl/evp.h>

namespace sitepower::api {

std::string Sha256Hex(const std::string& token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

core::Result<Principal> Authenticate(const std::string& header,
                                     const std::map<std::string, Principal>& tokens) {
  const std::string prefix = "Bearer ";
  if (header.empty()) return core::Status::Unauthenticated("missing authorization: Bearer <token>");
  if (header.compare(0, prefix.size(), prefix) != 0 || header.size() == prefix.size())
    return core::Status::Unauthenticated("authorization must be \"Bearer <token>\"");
  auto it = tokens.find(Sha256Hex(header.substr(prefix.size())));
  if (it == tokens.end()) return core::Status::Unauthenticated("unknown token");
  return it->second;
}

}  // namespace sitepower::api
