//! `orgs`: organizations, their members and classes, a class's teachers,
//! students and invitation codes, and accepting a code (see `services::orgs`).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};

use super::ApiError;
use super::extract::{IdPath, IdUserPath, Json, Page, Query};
use crate::app::App;
use crate::services::auth::Caller;
use crate::services::orgs::{
    self, Acceptance, AuditPage, AuditQuery, ClassPage, ClassView, InvitationPage,
    IssuedInvitation, Joined, MemberPage, MemberView, NewClass, NewInvitation, NewMember,
    NewOrganization, OrganizationPage, OrganizationView, PersonView, Placement, RoleChange,
    StatsView, StudentPage, TeacherPage,
};

/// The function's router.
pub fn router(app: App) -> Router {
    super::finish(routes(), app)
}

/// The function's routes, before the shared layers.
pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/organizations",
            post(create_organization).get(organizations),
        )
        .route("/v1/organizations/{id}", get(organization))
        .route(
            "/v1/organizations/{id}/members",
            get(members).post(add_member),
        )
        .route(
            "/v1/organizations/{id}/members/{user_id}",
            patch(change_role).delete(remove_member),
        )
        .route(
            "/v1/organizations/{id}/classes",
            post(create_class).get(classes),
        )
        .route("/v1/organizations/{id}/stats", get(stats))
        .route("/v1/classes/{id}", get(class))
        .route("/v1/classes/{id}/teachers", get(teachers).post(assign))
        .route("/v1/classes/{id}/teachers/{user_id}", delete(unassign))
        .route("/v1/classes/{id}/students", get(students).post(enroll))
        .route("/v1/classes/{id}/students/{user_id}", delete(withdraw))
        .route(
            "/v1/classes/{id}/invitations",
            post(invite).get(invitations),
        )
        .route("/v1/invitations/accept", post(accept))
        .route("/v1/audit", get(audit_trail))
}

async fn audit_trail(
    State(app): State<App>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Reply<AuditPage> {
    Ok(axum::Json(
        orgs::audit_trail(&app, caller.user_id, query).await?,
    ))
}

/// Entries per page of every list here: 50 unless asked, at most 200.
type ListPage = Page<50, 200>;

type Reply<T> = Result<axum::Json<T>, ApiError>;

fn created<T: serde::Serialize>(value: T) -> (StatusCode, axum::Json<T>) {
    (StatusCode::CREATED, axum::Json(value))
}

async fn create_organization(
    State(app): State<App>,
    Json(body): Json<NewOrganization>,
) -> Result<impl IntoResponse, ApiError> {
    let org = orgs::create_organization(&app, body).await?;
    let location = format!("/v1/organizations/{}", org.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(org),
    ))
}

async fn organizations(
    State(app): State<App>,
    caller: Caller,
    page: ListPage,
) -> Reply<OrganizationPage> {
    Ok(axum::Json(
        orgs::organizations(&app, caller.user_id, page.limit, page.offset).await?,
    ))
}

async fn organization(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Reply<OrganizationView> {
    Ok(axum::Json(
        orgs::organization(&app, caller.user_id, id).await?,
    ))
}

async fn members(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<MemberPage> {
    Ok(axum::Json(
        orgs::members(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn add_member(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<NewMember>,
) -> Result<(StatusCode, axum::Json<MemberView>), ApiError> {
    Ok(created(
        orgs::add_member(&app, caller.user_id, id, body).await?,
    ))
}

async fn change_role(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(id, user): IdUserPath,
    Json(body): Json<RoleChange>,
) -> Reply<MemberView> {
    Ok(axum::Json(
        orgs::change_role(&app, caller.user_id, id, user, body).await?,
    ))
}

async fn remove_member(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(id, user): IdUserPath,
) -> Result<StatusCode, ApiError> {
    orgs::remove_member(&app, caller.user_id, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_class(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<NewClass>,
) -> Result<impl IntoResponse, ApiError> {
    let class: ClassView = orgs::create_class(&app, caller.user_id, id, body).await?;
    let location = format!("/v1/classes/{}", class.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(class),
    ))
}

async fn classes(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<ClassPage> {
    Ok(axum::Json(
        orgs::classes(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn stats(State(app): State<App>, caller: Caller, IdPath(id): IdPath) -> Reply<StatsView> {
    Ok(axum::Json(orgs::stats(&app, caller.user_id, id).await?))
}

async fn class(State(app): State<App>, caller: Caller, IdPath(id): IdPath) -> Reply<ClassView> {
    Ok(axum::Json(orgs::class(&app, caller.user_id, id).await?))
}

async fn teachers(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<TeacherPage> {
    Ok(axum::Json(
        orgs::teachers(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn assign(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<Placement>,
) -> Result<(StatusCode, axum::Json<PersonView>), ApiError> {
    Ok(created(orgs::assign(&app, caller.user_id, id, body).await?))
}

async fn unassign(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(id, user): IdUserPath,
) -> Result<StatusCode, ApiError> {
    orgs::unassign(&app, caller.user_id, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn students(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<StudentPage> {
    Ok(axum::Json(
        orgs::students(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn enroll(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<Placement>,
) -> Result<(StatusCode, axum::Json<PersonView>), ApiError> {
    Ok(created(orgs::enroll(&app, caller.user_id, id, body).await?))
}

async fn withdraw(
    State(app): State<App>,
    caller: Caller,
    IdUserPath(id, user): IdUserPath,
) -> Result<StatusCode, ApiError> {
    orgs::withdraw(&app, caller.user_id, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn invite(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    Json(body): Json<NewInvitation>,
) -> Result<(StatusCode, axum::Json<IssuedInvitation>), ApiError> {
    Ok(created(orgs::invite(&app, caller.user_id, id, body).await?))
}

async fn invitations(
    State(app): State<App>,
    caller: Caller,
    IdPath(id): IdPath,
    page: ListPage,
) -> Reply<InvitationPage> {
    Ok(axum::Json(
        orgs::invitations(&app, caller.user_id, id, page.limit, page.offset).await?,
    ))
}

async fn accept(
    State(app): State<App>,
    caller: Caller,
    Json(body): Json<Acceptance>,
) -> Reply<Joined> {
    Ok(axum::Json(orgs::accept(&app, caller.user_id, body).await?))
}
