// SHA-256 (FIPS 180-4) of a byte string, as lower-case hex. Written for hybridpot from the standard's
// definition; used to check that a model file's body is the one hybridpot wrote.
#ifndef HYBRIDPOT_SHA256_H
#define HYBRIDPOT_SHA256_H

#include <cstdint>
#include <string>

namespace hybridpot {

std::string sha256_hex(const std::string &data);

}    // namespace hybridpot

#endif
