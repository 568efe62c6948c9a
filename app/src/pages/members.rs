//! Members of a shop and their roles; owners (and operators) manage them.

use crate::api::*;
use crate::components::{action_error, when_ms, ConfirmSubmit, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn MembersPage() -> impl IntoView {
    let params = use_params_map();
    let shop_id = Memo::new(move |_| params.with(|p| p.get("shop").unwrap_or_default()));
    let add = ServerAction::<AddMember>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let members = Resource::new(
        move || (shop_id.get(), add.version().get(), remove.version().get()),
        |(shop, _, _)| list_members(shop),
    );

    view! {
        <Title text="Members · Herald"/>
        <h1>"Members"</h1>
        <section class="panel">
            <h2>"Add a member"</h2>
            <ActionForm action=add attr:class="grid-form">
                <input type="hidden" name="shop_id" value=move || shop_id.get()/>
                <label for="member-email">"Email"</label>
                <input id="member-email" name="email" type="email" required/>
                <label for="member-password">"Password (for a new user)"</label>
                <input id="member-password" name="password" type="password" minlength="8"/>
                <label for="member-role">"Role"</label>
                <select id="member-role" name="role">
                    <option value="viewer">"Viewer"</option>
                    <option value="owner">"Owner"</option>
                </select>
                <button type="submit">"Add member"</button>
            </ActionForm>
            {action_error(add.value())}
        </section>
        {action_error(remove.value())}
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match members.await {
                    Err(e) => view! { <ErrorNote message=error_text(&e)/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No members yet. Add an owner or a viewer above."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="stacking">
                            <thead><tr>
                                <th scope="col">"Email"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Since"</th>
                                <th scope="col">"Actions"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|m| view! {
                                    <tr>
                                        <td data-label="Email">{m.email.clone()}</td>
                                        <td data-label="Role">{m.role.as_str()}</td>
                                        <td data-label="Since">{when_ms(m.created_at)}</td>
                                        <td data-label="Actions">
                                            <ActionForm action=remove>
                                                <input type="hidden" name="shop_id" value=shop_id.get_untracked()/>
                                                <input type="hidden" name="user_id" value=m.user_id.clone()/>
                                                <ConfirmSubmit action="Remove" summary_label=format!("Remove {} from the shop", m.email)
                                                    question=format!("Remove {} from this shop? They lose access to it at once.", m.email)
                                                    confirm=format!("Remove {}", m.email)/>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
