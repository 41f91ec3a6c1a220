"""Automatic discovery and selection of the segmenting latent direction (Appendix B of the
paper). Manual: docs/directions.md.

    python -m generator.directions discover --gan NAME --k K --steps S --out dirs.pt
    python -m generator.directions score --gan NAME --directions dirs.pt --out DIR --pick
    python -m generator.directions optimize --gan NAME --out DIR

Library entry points (import the submodule; importing this package stays cheap):
    generator.directions.operators.fit_operators        two affine colour maps, eq. 6
    generator.directions.score.score_directions         L_h, D_h, area filter, ranking
    generator.directions.pick.pick_direction            sign + object class -> direction.json
    generator.directions.discover.discover              Voynov & Babenko 2020 deformator
    generator.directions.optimize.optimize_direction    direct search for a segmenting h
"""
