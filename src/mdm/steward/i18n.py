"""The console's message catalogue: Vietnamese first, English on request.

The language comes from ``?lang=vi|en`` (which also sets the ``mdm_lang`` cookie),
else the cookie, else Vietnamese. A missing key renders as the key itself, so a
forgotten translation is visible, never an error.
"""

from __future__ import annotations

from typing import Final

LANGS: Final = ("vi", "en")
DEFAULT_LANG: Final = "vi"

MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "app.title": ("Bàn điều phối dữ liệu", "Data stewards' console"),
    "nav.review": ("Hàng đợi duyệt", "Review queue"),
    "nav.search": ("Tìm kiếm", "Search"),
    "nav.quality": ("Chất lượng nguồn", "Source quality"),
    "nav.stewards": ("Cán bộ", "Stewards"),
    "nav.logout": ("Đăng xuất", "Log out"),
    "login.title": ("Đăng nhập", "Log in"),
    "login.username": ("Tên đăng nhập", "Username"),
    "login.password": ("Mật khẩu", "Password"),
    "login.submit": ("Đăng nhập", "Log in"),
    "login.failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."),
    "login.throttled": (
        "Quá nhiều lần thử. Vui lòng đợi vài phút.",
        "Too many attempts. Please wait a few minutes.",
    ),
    "login.expired": (
        "Phiên làm việc đã hết hạn. Vui lòng đăng nhập lại.",
        "Your session has expired. Please log in again.",
    ),
    "role.reviewer": ("Người duyệt", "Reviewer"),
    "role.senior": ("Cán bộ cao cấp", "Senior steward"),
    "role.admin": ("Quản trị", "Administrator"),
    "queue.title": ("Hàng đợi duyệt cặp bản ghi", "Match review queue"),
    "queue.pending": ("cặp đang chờ duyệt", "pairs waiting for review"),
    "queue.start": ("Bắt đầu duyệt", "Start reviewing"),
    "queue.empty": ("Không còn cặp nào chờ duyệt.", "Nothing left to review."),
    "queue.reserved_by": ("Đang được giữ bởi", "Reserved by"),
    "filter.entity_type": ("Loại đối tượng", "Entity type"),
    "filter.source": ("Hệ thống nguồn", "Source system"),
    "filter.band": ("Khoảng điểm", "Score band"),
    "filter.any": ("Tất cả", "Any"),
    "filter.apply": ("Lọc", "Filter"),
    "type.citizen": ("Công dân", "Citizen"),
    "type.organization": ("Tổ chức", "Organization"),
    "type.dossier": ("Hồ sơ", "Dossier"),
    "cand.title": ("Cặp bản ghi", "Candidate pair"),
    "cand.probability": ("Xác suất trùng khớp", "Match probability"),
    "cand.weight": ("Trọng số khớp", "Match weight"),
    "cand.field": ("Trường", "Field"),
    "cand.left": ("Bản ghi trái", "Left record"),
    "cand.right": ("Bản ghi phải", "Right record"),
    "cand.waterfall": ("Giải thích điểm (trọng số từng phép so sánh)", "Why this score"),
    "cand.prior": ("Tiên nghiệm", "Prior"),
    "cand.total": ("Tổng", "Total"),
    "cand.same": ("Cùng một đối tượng", "Same"),
    "cand.not_same": ("Khác nhau", "Not the same"),
    "cand.skip": ("Bỏ qua", "Skip"),
    "cand.undo": ("Hoàn tác", "Undo"),
    "cand.keys": (
        "Phím tắt: s = cùng, n = khác, k = bỏ qua, u = hoàn tác",
        "Keys: s = same, n = not same, k = skip, u = undo",
    ),
    "cand.same_entity": ("Đã cùng một bản ghi gốc", "Already in one golden record"),
    "cand.decided": ("Đã quyết định", "Decided"),
    "cand.reserved_other": ("Đang được cán bộ khác giữ", "Reserved by another steward"),
    "cand.diff": ("khác", "differs"),
    "cand.missing": ("thiếu", "missing"),
    "entity.title": ("Bản ghi gốc", "Golden record"),
    "entity.attribute": ("Thuộc tính", "Attribute"),
    "entity.value": ("Giá trị", "Value"),
    "entity.provenance": ("Nguồn gốc (quy tắc, nguồn)", "Provenance (rule, sources)"),
    "entity.conflict": ("xung đột", "conflict"),
    "entity.records": ("Bản ghi nguồn liên kết", "Linked source records"),
    "entity.history": ("Lịch sử", "History"),
    "entity.redirects": ("Mã cũ chuyển hướng về đây", "Retired IDs redirected here"),
    "entity.redirected": ("Đã chuyển hướng từ", "Redirected from"),
    "entity.merge": ("Hợp nhất với bản ghi gốc khác", "Merge with another golden record"),
    "entity.other_id": ("Mã định danh của bản ghi kia", "Canonical ID of the other record"),
    "entity.preview": ("Xem trước", "Preview"),
    "entity.confirm_merge": ("Xác nhận hợp nhất", "Confirm merge"),
    "entity.merge_preview": ("Xem trước kết quả hợp nhất", "Merge preview"),
    "entity.split": ("Tách bản ghi đã chọn", "Split the chosen records out"),
    "entity.override": ("Ghi đè giá trị thuộc tính", "Override an attribute"),
    "entity.reason": ("Lý do", "Reason"),
    "entity.save": ("Lưu", "Save"),
    "entity.version": ("Phiên bản", "Version"),
    "entity.status": ("Trạng thái", "Status"),
    "entity.change": ("Thay đổi", "Change"),
    "entity.by": ("Bởi", "By"),
    "entity.when": ("Thời điểm", "When"),
    "entity.senior_only": (
        "Chỉ cán bộ cao cấp được hợp nhất, tách và ghi đè.",
        "Only senior stewards can merge, split and override.",
    ),
    "search.title": ("Tìm kiếm", "Search"),
    "search.canonical": ("Mã định danh", "Canonical ID"),
    "search.source_key": ("Hệ thống nguồn + khóa", "Source system + key"),
    "search.attributes": ("Theo thuộc tính", "By attributes"),
    "search.name": ("Họ tên / tên", "Name"),
    "search.birth_year": ("Năm sinh", "Birth year"),
    "search.go": ("Tìm", "Search"),
    "search.none": ("Không tìm thấy.", "Nothing found."),
    "quality.title": ("Chất lượng theo hệ thống nguồn", "Quality by source system"),
    "quality.records": ("Bản ghi", "Records"),
    "quality.rejects": ("Bị loại", "Rejects"),
    "quality.reject_rate": ("Tỷ lệ loại", "Reject rate"),
    "quality.by_reason": ("Bị loại theo lý do", "Rejects by reason"),
    "quality.dup_within": ("Trùng trong cùng nguồn", "Duplicates within source"),
    "quality.dup_across": ("Trùng với nguồn khác", "Duplicates across sources"),
    "quality.conflicts": ("Bản ghi gốc có xung đột", "Golden records in conflict"),
    "quality.ambiguous": ("Địa chỉ xã cũ bị chia", "Addresses in a split commune"),
    "quality.pending": ("Chờ duyệt", "Pending review"),
    "quality.multi_one": (
        "Bản ghi gốc có nhiều bản ghi từ một nguồn",
        "Golden records with several records from one source",
    ),
    "quality.multi_many": (
        "Bản ghi gốc có bản ghi từ nhiều nguồn",
        "Golden records with records from several sources",
    ),
    "quality.conflicts_by_attr": ("Xung đột theo thuộc tính", "Conflicts by attribute"),
    "stewards.title": ("Quản lý cán bộ", "Steward accounts"),
    "stewards.create": ("Tạo tài khoản", "Create account"),
    "stewards.display_name": ("Tên hiển thị", "Display name"),
    "stewards.role": ("Vai trò", "Role"),
    "stewards.active": ("Hoạt động", "Active"),
    "stewards.created": (
        "Đã tạo. Mật khẩu (chỉ hiển thị một lần):",
        "Created. Password (shown once):",
    ),
    "error.title": ("Lỗi", "Error"),
    "error.forbidden": ("Bạn không có quyền thực hiện thao tác này.", "You may not do this."),
    "error.csrf": (
        "Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang.",
        "The form expired or is invalid. Please reload the page.",
    ),
    "error.database_unavailable": (
        "Cơ sở dữ liệu tạm thời không truy cập được. Vui lòng thử lại sau ít phút.",
        "The database is temporarily unavailable. Please try again in a few moments.",
    ),
    "error.bad_request": ("Yêu cầu không hợp lệ.", "The request is invalid."),
    "error.bad_parameter": (
        "Giá trị của tham số “{name}” không hợp lệ.",
        "The value of “{name}” is invalid.",
    ),
    "error.allowed": ("Giá trị hợp lệ: {allowed}.", "Allowed values: {allowed}."),
    "error.back": ("Quay lại", "Back"),
    "lang.switch": ("English", "Tiếng Việt"),
}


def translate(key: str, lang: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]
