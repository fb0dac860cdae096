"""The published factors: their values, and that ../shared's files give the embedded ones."""

from __future__ import annotations

import pytest

from pamtalk.domain import CROPS
from pamtalk.models.esg import factors as F

needs_shared = pytest.mark.skipif(
    not F.SHARED_ESG.is_dir(),
    reason=f"{F.SHARED_ESG} is absent: the embedded factors are used and cannot be cross-checked",
)


def test_constants_are_the_published_ones() -> None:
    assert F.N2O_EF1.value == 0.01
    assert F.N2O_PER_N2O_N.value == pytest.approx(44 / 28)
    assert F.GWP100_N2O.value == 273
    # 74,100 kg CO2/TJ x 36.2 MJ/L = 2.68 kg CO2 per litre of diesel.
    assert F.EMBEDDED_DIESEL.value == pytest.approx(2.68, abs=0.005)
    assert F.EMBEDDED_GRID.value == pytest.approx(0.41565)


def test_every_factor_cites_a_source() -> None:
    factors = F.embedded()
    cited = [
        F.N2O_EF1,
        F.N2O_PER_N2O_N,
        F.GWP100_N2O,
        factors.diesel,
        factors.grid,
        factors.fertiliser,
        *factors.farm_co2e.values(),
        *factors.water.values(),
    ]
    for factor in cited:
        assert factor.source and factor.unit


def test_every_crop_has_a_footprint() -> None:
    factors = F.embedded()
    for crop in CROPS:
        assert factors.crop_farm_co2e(crop) > 0
        assert factors.crop_water(crop) > 0
    assert F.CROP_PRODUCT["tangerine"] == "Citrus Fruit"
    assert F.CROP_PRODUCT["apple"] == "Apples"
    assert F.CROP_PRODUCT["onion"] == F.CROP_PRODUCT["garlic"] == "Onions & Leeks"
    assert factors.crop_farm_co2e("rice") == 3.6
    assert factors.crop_water("potato") == 387  # starchy roots, not vegetables


@needs_shared
def test_files_give_the_embedded_values() -> None:
    read, embedded = F.from_files(F.SHARED_ESG), F.embedded()
    # The OWID diesel row is 266.7597866 kg/MWh, i.e. 74,099.94 kg/TJ.
    assert read.diesel.value == pytest.approx(embedded.diesel.value, rel=1e-5)
    assert read.grid.value == embedded.grid.value
    assert read.fertiliser.value == pytest.approx(embedded.fertiliser.value, rel=1e-9)
    for product, factor in embedded.farm_co2e.items():
        assert read.farm_co2e[product].value == factor.value, product
    for group, factor in embedded.water.items():
        assert read.water[group].value == factor.value, group


@needs_shared
def test_default_reads_shared_when_present() -> None:
    assert F.default().origin == str(F.SHARED_ESG)


def test_without_shared_the_embedded_factors_serve(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # What a fresh machine without ../shared sees.
    factors = F.load(tmp_path_factory.mktemp("fresh") / "no-such-folder")
    assert factors.origin == "embedded"
    assert factors.grid.value == F.EMBEDDED_GRID.value
