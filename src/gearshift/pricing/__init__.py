"""Cost of a call from its token usage: config ``price`` overrides first, then genai-prices
(offline, bundled snapshot only), exact ``Decimal`` for the ledger and floats for the router."""

from gearshift.pricing.pricer import Pricer, rates_from_config
from gearshift.pricing.rates import Price, PriceSource, Quote, Rates, quote

__all__ = ["Price", "PriceSource", "Pricer", "Quote", "Rates", "quote", "rates_from_config"]
