#include "modbus/link.hpp"

namespace sitepower::modbus {

boost::asio::awaitable<core::Status> Link::TransactAll(uint8_t unit,
                                                       std::span<const ReadBlock> blocks,
                                                       core::Millis timeout,
                                                       std::vector<std::vector<uint16_t>>* out) {
  out->resize(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto r = co_await Transact(unit, blocks[i], timeout);
    if (!r.ok()) co_return r.status();
    (*out)[i] = std::move(*r);
  }
  co_return core::Status::Ok();
}

}  // namespace sitepower::modbus
