#include <gtest/gtest.h>

#include "core/protocol.hpp"

TEST(Protocol, Placeholder) { SUCCEED(); }
