"""Media library: item metadata, topic catalogue (seeded), renditions, bytes served.

Revision ID: media_1
Revises: fleet_1
Create Date: 2026-11-26 18:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "media_1"
down_revision: str | None = "fleet_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Phụ lục 01 of the 2024 guidance (Cục Thông tin cơ sở): (code, group, title_vi, title_en).
_TOPICS = [
    ("I.1", "I", "Phát triển văn hóa đọc trong cộng đồng (QĐ 329/QĐ-TTg)",
     "Reading culture (QĐ 329/QĐ-TTg)"),
    ("I.2", "I", "Phát triển bền vững và nâng cao năng lực cạnh tranh quốc gia (QĐ 1045/QĐ-TTg)",
     "Sustainable development and national competitiveness (QĐ 1045/QĐ-TTg)"),
    ("I.3", "I", "Chương trình sức khỏe Việt Nam (QĐ 1092/QĐ-TTg)",
     "Vietnam health programme (QĐ 1092/QĐ-TTg)"),
    ("I.4", "I", "Chương trình hành động quốc gia “Không còn nạn đói” (QĐ 712/QĐ-TTg)",
     "“Zero Hunger” national action programme (QĐ 712/QĐ-TTg)"),
    ("I.5", "I", "Bảo vệ quyền lợi người tiêu dùng (QĐ 1157/QĐ-TTg)",
     "Consumer protection (QĐ 1157/QĐ-TTg)"),
    ("I.6", "I", "Chương trình hành động quốc gia về người cao tuổi (QĐ 2156/QĐ-TTg)",
     "The elderly (QĐ 2156/QĐ-TTg)"),
    ("I.7", "I", "Chống khai thác hải sản bất hợp pháp, không báo cáo và không theo quy định "
     "(QĐ 374/QĐ-BTTTT)", "Illegal, unreported and unregulated fishing (QĐ 374/QĐ-BTTTT)"),
    ("I.8", "I", "Sử dụng năng lượng tiết kiệm và hiệu quả (QĐ 1509/QĐ-BTTTT)",
     "Energy saving and efficiency (QĐ 1509/QĐ-BTTTT)"),
    ("I.9", "I", "Phòng, chống thiên tai - chủ động thích ứng với biến đổi khí hậu "
     "(QĐ 1329/QĐ-BTTTT)",
     "Natural disaster prevention and climate adaptation (QĐ 1329/QĐ-BTTTT)"),
    ("I.10", "I", "Phòng chống bệnh cúm gia cầm (QĐ 367/QĐ-BTTTT)",
     "Avian influenza (QĐ 367/QĐ-BTTTT)"),
    ("I.11", "I", "Phòng, chống dịch tả lợn châu Phi (QĐ 1328/QĐ-BTTTT)",
     "African swine fever (QĐ 1328/QĐ-BTTTT)"),
    ("I.12", "I", "Sản xuất và tiêu dùng bền vững (QĐ 477/QĐ-BTTTT)",
     "Sustainable production and consumption (QĐ 477/QĐ-BTTTT)"),
    ("II.1", "II", "Phát triển kinh tế - xã hội năm 2024", "Socio-economic development 2024"),
    ("II.2", "II", "Quảng bá sản phẩm đạt Thương hiệu quốc gia Việt Nam",
     "National brand products"),
    ("II.3", "II", "Dịch vụ công trực tuyến", "Online public services"),
    ("II.4", "II", "Chuyển đổi số, an toàn thông tin",
     "Digital transformation and information security"),
    ("II.5", "II", "Bảo vệ môi trường", "Environmental protection"),
    ("II.6", "II", "Phòng, chống tác hại của thuốc lá", "Tobacco harm prevention"),
    ("II.7", "II", "Đảm bảo an toàn giao thông quốc gia", "Road traffic safety"),
    ("II.8", "II", "Dân tộc, tôn giáo", "Ethnic and religious affairs"),
    ("II.9", "II", "Di sản thiên nhiên, di sản văn hóa được UNESCO công nhận",
     "UNESCO-recognised heritage"),
]  # fmt: skip


def upgrade() -> None:
    op.add_column(
        "media_items",
        sa.Column("language", sa.String(length=16), nullable=False, server_default="vi"),
    )
    op.add_column(
        "media_items",
        sa.Column("uploader", sa.String(length=128), nullable=False, server_default=""),
    )
    op.add_column("media_items", sa.Column("true_peak_out_db", sa.Float(), nullable=True))
    topics = op.create_table(
        "topics",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("title_vi", sa.String(), nullable=False),
        sa.Column("title_en", sa.String(), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_topics")),
    )
    op.create_table(
        "media_topics",
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("topic_code", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media_items.id"],
            name=op.f("fk_media_topics_media_id_media_items"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_code"], ["topics.code"],
            name=op.f("fk_media_topics_topic_code_topics"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("media_id", "topic_code", name=op.f("pk_media_topics")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_media_topics_topic_code"), "media_topics", ["topic_code"], unique=False
    )
    op.create_table(
        "media_renditions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("bitrate_kbps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media_items.id"],
            name=op.f("fk_media_renditions_media_id_media_items"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_renditions")),
        sa.UniqueConstraint("media_id", "codec", name=op.f("uq_media_renditions_media_id_codec")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_media_renditions_sha256"), "media_renditions", ["sha256"], unique=False
    )
    op.create_table(
        "media_downloads",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", "day", name=op.f("pk_media_downloads")),
    )
    op.bulk_insert(
        topics,
        [
            {"code": code, "group": group, "title_vi": vi, "title_en": en, "active": True}
            for code, group, vi, en in _TOPICS
        ],
    )
    # Items stored before media_1 have their primary rendition only.
    op.execute(
        "INSERT INTO media_renditions (media_id, codec, sha256, size_bytes, bitrate_kbps) "
        "SELECT id, codec, sha256, size_bytes, 24 FROM media_items"
    )


def downgrade() -> None:
    op.drop_table("media_downloads")
    op.drop_index(op.f("ix_media_renditions_sha256"), table_name="media_renditions")
    op.drop_table("media_renditions")
    op.drop_index(op.f("ix_media_topics_topic_code"), table_name="media_topics")
    op.drop_table("media_topics")
    op.drop_table("topics")
    with op.batch_alter_table("media_items") as batch:
        batch.drop_column("true_peak_out_db")
        batch.drop_column("uploader")
        batch.drop_column("language")
