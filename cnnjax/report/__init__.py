"""`cnnjax report` (`command`): finished runs beside the papers' numbers
(`compare`), from the published rows with their citations (`papers`); with
--claims, every sweep's claims with their verdicts (`claims`)."""
