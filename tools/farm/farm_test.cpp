// The farm answers like a controller, checked by an independent client
// (libmodbus): SunSpec marker and model chain, the 802 points, discrete
// inputs, exceptions for bad addresses, and each kind of faulty unit.
#include "farm/farm.hpp"

#include <gtest/gtest.h>
#include <modbus/modbus.h>

#include <cerrno>
#include <thread>

namespace sitepower::farm {
namespace {

class FarmTest : public ::testing::Test {
 protected:
  void Run(FarmOptions o) {
    farm_ = std::make_unique<Farm>(io_, o);
    ASSERT_TRUE(farm_->Start().ok());
    thread_ = std::thread([this]() {
      auto guard = boost::asio::make_work_guard(io_);
      io_.run();
    });
  }
  void TearDown() override {
    if (farm_) farm_->Stop();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  modbus_t* Client(int port_index, int unit) {
    modbus_t* c = modbus_new_tcp("127.0.0.1", farm_->ports()[port_index]);
    EXPECT_EQ(modbus_connect(c), 0);
    modbus_set_slave(c, unit);
    modbus_set_response_timeout(c, 0, 300000);
    return c;
  }
  boost::asio::io_context io_;
  std::unique_ptr<Farm> farm_;
  std::thread thread_;
};

TEST_F(FarmTest, AStandardDeviceServesTheSunSpecChainOnly) {
  FarmOptions o;
  o.ports = 1;
  o.units_per_port = 2;
  Run(o);
  modbus_t* c = Client(0, 2);
  uint16_t r[64];
  ASSERT_EQ(modbus_read_registers(c, 40070, 64, r), 64) << modbus_strerror(errno);
  EXPECT_EQ(r[0], 802);
  EXPECT_EQ(r[34], 5350 + 2);  // 40104
  ASSERT_EQ(modbus_read_registers(c, 40134, 2, r), 2);
  EXPECT_EQ(r[0], 0xFFFF);                               // end of the chain
  EXPECT_EQ(modbus_read_registers(c, 40200, 2, r), -1);  // no vendor extension
  EXPECT_EQ(errno, EMBXILADD);
  EXPECT_EQ(modbus_read_registers(c, 40134, 3, r), -1);  // runs past the end
  EXPECT_EQ(errno, EMBXILADD);
  uint8_t bits[3];
  EXPECT_EQ(modbus_read_input_bits(c, 0, 3, bits), -1);  // no discrete inputs at all
  EXPECT_EQ(errno, EMBXILFUN);
  modbus_close(c);
  modbus_free(c);
}

TEST_F(FarmTest, AnswersLikeASunSpecController) {
  FarmOptions o;
  o.ports = 2;
  o.units_per_port = 3;
  o.plant_extension = true;
  Run(o);
  for (int p = 0; p < 2; ++p)
    for (int u = 1; u <= 3; ++u) {
      modbus_t* c = Client(p, u);
      uint16_t r[4];
      ASSERT_EQ(modbus_read_registers(c, 40000, 4, r), 4) << modbus_strerror(errno);
      EXPECT_EQ(r[0], 0x5375);
      EXPECT_EQ(r[1], 0x6E53);
      EXPECT_EQ(r[2], 1);
      EXPECT_EQ(r[3], 66);
      ASSERT_EQ(modbus_read_registers(c, 40070, 2, r), 2);
      EXPECT_EQ(r[0], 802);
      ASSERT_EQ(modbus_read_registers(c, 40104, 1, r), 1);
      EXPECT_EQ(r[0], 5350 + u % 20);
      uint8_t bits[3];
      ASSERT_EQ(modbus_read_input_bits(c, 0, 3, bits), 3);
      EXPECT_EQ(bits[0], 1);  // mains present
      EXPECT_EQ(bits[1], 0);
      EXPECT_EQ(modbus_read_registers(c, 30000, 2, r), -1);  // outside the image
      EXPECT_EQ(errno, EMBXILADD);
      modbus_close(c);
      modbus_free(c);
    }
}

TEST_F(FarmTest, FaultyUnitsMisbehaveEachTheirWay) {
  FarmOptions o;
  o.ports = 1;
  o.units_per_port = 60;
  o.faulty_fraction = 0.5;
  Run(o);
  int seen[4] = {0, 0, 0, 0};
  for (int u = 1; u <= 60; ++u) {
    UnitFault f = farm_->FaultOf(0, u);
    ++seen[static_cast<int>(f)];
    modbus_t* c = Client(0, u);
    uint16_t r[2];
    int rc = modbus_read_registers(c, 40000, 2, r);
    if (f == UnitFault::kNone) {
      EXPECT_EQ(rc, 2) << u;
    } else {
      EXPECT_EQ(rc, -1) << u;
      if (f == UnitFault::kException) {
        EXPECT_EQ(errno, EMBXSFAIL) << u;
      }
      if (f == UnitFault::kSilent) {
        EXPECT_EQ(errno, ETIMEDOUT) << u;
      }
    }
    modbus_close(c);
    modbus_free(c);
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(seen[k], 3) << "fault kind " << k;
}

}  // namespace
}  // namespace sitepower::farm
